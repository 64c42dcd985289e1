"""Routing new leads against the warehouse: what `territory route` and the inbox sensor's job share."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from ml.policy import Policy
from ml.routing import Territories, load_champion, read_leads, route_leads, territories_for_routing
from ml.scoring import ChampionModel
from orchestration.resources import PipelineSettings
from orchestration.tables import append_table, read_frame

LEAD_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".json")


@dataclass(frozen=True)
class Router:
    """Everything routing reads once at start-up: the model, the plan and the policies."""

    model: ChampionModel
    plan: Territories
    tier_policy: pd.DataFrame
    policy: Policy

    @classmethod
    def start(cls, settings: PipelineSettings) -> Router:
        with settings.reader() as con:
            territories = read_frame(con, "select * from territories")
            assignments = read_frame(con, "select account_id, territory_id from territory_assignments")
            features = read_frame(con, "select account_id, industry from account_features")
            tier_policy = read_frame(con, "select tier, owner_role, sla_hours from tier_policy")
        return cls(
            model=load_champion(settings.champion_path),
            plan=territories_for_routing(territories, assignments, features),
            tier_policy=tier_policy,
            policy=settings.load_policy(),
        )

    def route(self, leads: pd.DataFrame, run_id: str) -> pd.DataFrame:
        routed_at = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
        return route_leads(leads, self.model, self.plan, self.tier_policy, self.policy.routing, routed_at, run_id)


def record_decisions(settings: PipelineSettings, decisions: pd.DataFrame) -> None:
    """Append to the routing_decisions audit trail (the single writer, held only for the insert)."""
    with settings.writer() as con:
        append_table(con, "routing_decisions", decisions)


def route_file(settings: PipelineSettings, path: Path, run_id: str, router: Router | None = None) -> pd.DataFrame:
    decisions = (router or Router.start(settings)).route(read_leads(path), run_id)
    record_decisions(settings, decisions)
    return decisions


def inbox_files(settings: PipelineSettings) -> list[Path]:
    """Lead files waiting in the inbox, oldest name first so the audit trail follows arrival order."""
    inbox = settings.inbox_dir
    if not inbox.is_dir():
        return []
    return sorted(p for p in inbox.iterdir() if p.is_file() and p.suffix.lower() in LEAD_SUFFIXES)


def move_to_done(settings: PipelineSettings, path: Path) -> Path:
    done = settings.inbox_dir / "done"
    done.mkdir(parents=True, exist_ok=True)
    target = done / path.name
    if target.exists():
        # A file of the same name was routed before; keep both, the later one stamped.
        target = done / f"{path.stem}.{datetime.now(UTC):%Y%m%dT%H%M%S%f}{path.suffix}"
    return Path(shutil.move(str(path), str(target)))
