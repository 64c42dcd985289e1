"""Territory assets: balanced assignment of accounts to reps, joined with the tier policy for routing and SLAs;
what-if scenarios planned beside it."""

import base64
import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, AssetSpec, MaterializeResult, MetadataValue, asset, multi_asset

from ml.policy import TerritoryPolicy, TerritoryScenario
from ml.routing import pair_sdrs
from ml.territories import owner_rep_ids, plan_territories
from ml.territory_report import balance_bars, territory_map
from orchestration.resources import PipelineSettings
from orchestration.tables import append_table, markdown, read_frame, replace_table, table_exists

ACCOUNTS_SQL = """
select f.account_id, f.latitude, f.longitude, f.industry, f.parent_account_id,
       s.potential, s.tier, s.conversion_probability,
       coalesce({previous_rep}, f.owner_rep_id) as owner_rep_id,
       exists (select 1 from stg_crm__opportunities o
               where o.account_id = f.account_id and o.outcome = 'open'
                 and regexp_matches(lower(o.stage), ?)) as has_late_stage_opportunity,
       exists (select 1 from stg_crm__opportunities o
               where o.account_id = f.account_id and o.outcome in ('won', 'lost'))
       and not exists (select 1 from stg_crm__opportunities o
                       where o.account_id = f.account_id and o.outcome = 'open') as outcome_decided,
       (select any_value(v.value) from account_attribute_values v
        where v.account_id = f.account_id and v.attribute = 'locked_rep_id') as locked_rep_id
from account_features f
join account_scores s using (account_id)
{previous_join}
order by f.account_id
"""


def read_plan_inputs(con, late_stages: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Accounts with scores, their current owner (last plan first, else the CRM owner), whether an open
    opportunity is at a late stage, and a lock from the accounts' `locked_rep_id` column; reps; tier policy."""
    has_previous = table_exists(con, "territory_assignments")
    # A pattern that matches nothing when the policy names no late stage.
    late_pattern = "|".join(re.escape(stage.lower()) for stage in late_stages) or "$^"
    accounts = read_frame(con, ACCOUNTS_SQL.format(
        previous_rep="p.rep_id" if has_previous else "null",
        previous_join="left join territory_assignments p using (account_id)" if has_previous else "",
    ), [late_pattern])
    previous = (
        read_frame(con, "select account_id, territory_id, rep_id from territory_assignments")
        if has_previous else pd.DataFrame(columns=["account_id", "territory_id", "rep_id"])
    )
    reps = read_frame(con, "select * from rep_capacity order by rep_id")
    tier_policy = read_frame(con, "select tier, owner_role, sla_hours, play from tier_policy")
    return accounts, previous, reps, tier_policy


def keep_current_owners(accounts: pd.DataFrame, previous: pd.DataFrame, owner_ids: list[str]) -> pd.DataFrame:
    """The accounts with every planned account pinned to its current rep (when that rep still owns a
    territory), so a nightly run only places new accounts; an explicit lock still wins."""
    current = accounts["account_id"].map(previous.set_index("account_id")["rep_id"])
    current = current.where(current.isin(owner_ids))
    locked = accounts["locked_rep_id"] if "locked_rep_id" in accounts else pd.Series(None, index=accounts.index)
    return accounts.assign(locked_rep_id=locked.where(locked.notna(), current))


def working_rep(assignments: pd.DataFrame) -> pd.Series:
    """Who works the account now: the territory's SDR for SDR tiers, nobody for nurture, else the owner."""
    role = assignments["owner_role"].astype("string").str.upper()
    sdr = assignments["sdr_rep_id"].where(assignments["sdr_rep_id"].notna(), assignments["rep_id"])
    worker = assignments["rep_id"].where(role != "SDR", sdr)
    return worker.astype("object").where(role != "NURTURE", None)


def routing_for_changes(assignments: pd.DataFrame, previous: pd.DataFrame, basis: str,
                        routed_at: datetime, run_id: str) -> pd.DataFrame:
    """One audit row per account whose owner is new or changed in this plan.

    Speed-to-lead SLAs are for leads still to be worked: an account whose every opportunity is already
    won or lost (a historical export's decided MQLs, a customer) gets its owner recorded without an SLA.
    """
    merged = assignments.merge(
        previous.rename(columns={"rep_id": "last_rep_id", "territory_id": "last_territory_id"}),
        on="account_id", how="left",
    )
    changed = merged[merged["last_rep_id"].isna() | (merged["last_rep_id"] != merged["rep_id"])].copy()
    first_time = changed["last_rep_id"].isna()
    rule = "nearest balanced geographic territory" if basis == "geo" else "industry-grouped territory"
    moved = "rebalance: moved from " + changed["last_rep_id"].astype(str) + " to " + changed["rep_id"]
    changed["reason"] = moved.where(~first_time, "initial plan: " + rule)
    decided = (changed["outcome_decided"].fillna(False).astype(bool) if "outcome_decided" in changed
               else pd.Series(False, index=changed.index))
    changed["reason"] = changed["reason"].where(~decided, changed["reason"] + "; outcome already decided, no SLA")
    changed["sla_hours"] = changed["sla_hours"].astype(float).where(~decided)
    changed["routed_at"] = routed_at
    changed["sla_due_at"] = routed_at + pd.to_timedelta(changed["sla_hours"], unit="h")
    changed["run_id"] = run_id
    return changed[[
        "account_id", "territory_id", "rep_id", "owner_role", "tier", "sla_hours", "sla_due_at", "reason",
        "routed_at", "run_id",
    ]].rename(columns={"account_id": "lead_id"}).assign(account_id=lambda d: d["lead_id"], source="territory_plan")


def _embedded_png(path: Path) -> MetadataValue:
    """A PNG shown inline in the Dagster UI (base64 in markdown), with where the file is."""
    encoded = base64.b64encode(path.read_bytes()).decode()
    return MetadataValue.md(f"![{path.stem}](data:image/png;base64,{encoded})\n\n`{path}`")


@multi_asset(
    specs=[
        AssetSpec("territories", group_name="territories", deps=["account_scores", "rep_capacity", "tier_policy"],
                  description="One territory per owner rep with its potential, workload and A/B/C counts.",
                  kinds={"highs", "duckdb"}),
        AssetSpec("territory_assignments", group_name="territories", deps=["territories"],
                  description="Each account's territory, rep, tier, owner role and SLA, and whether it moved."),
        AssetSpec("routing_decisions", group_name="territories", deps=["territory_assignments"],
                  description="Audit trail of routing: every new or changed owner with its reason and SLA due time."),
    ],
)
def territory_plan(context: AssetExecutionContext, settings: PipelineSettings):
    """Assign every account to exactly one rep's territory, balanced on potential, workload, A-tier count and
    account count. Once a plan exists, accounts stay with their rep and only new ones are placed (unless the
    policy's `replan_existing` says re-plan); moves beyond that are rebalance proposals a person applies."""
    policy = settings.load_policy()
    with settings.reader() as con:
        accounts, previous, reps, tier_policy = read_plan_inputs(con, policy.territories.late_stages)
    kept = not previous.empty and not policy.territories.replan_existing
    planned = keep_current_owners(accounts, previous, owner_rep_ids(reps, policy.territories)) if kept else accounts
    plan = plan_territories(planned, reps, policy.territories, policy.workload_weights)
    for warning in plan.warnings:
        context.log.warning(warning)

    pods = pair_sdrs(plan.territories, reps)
    assignments = (
        plan.assignments.merge(accounts[["account_id", "tier", "outcome_decided"]], on="account_id", how="left")
        .merge(tier_policy, on="tier", how="left")
        .merge(pods, on="territory_id", how="left")
    )
    assignments["working_rep_id"] = working_rep(assignments)
    routed_at = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
    routing = routing_for_changes(assignments, previous, plan.basis, routed_at, context.run.run_id)
    with settings.writer() as con:
        replace_table(con, "territories", plan.territories.merge(pods, on="territory_id", how="left"))
        replace_table(con, "territory_assignments", assignments[[
            "account_id", "territory_id", "rep_id", "tier", "owner_role", "working_rep_id", "sla_hours", "play",
            "previous_rep_id", "is_moved", "move_reason",
        ]])
        append_table(con, "routing_decisions", routing)

    balance = pd.DataFrame({
        "criterion": list(plan.balance),
        "plan_max_deviation": list(plan.balance.values()),
        "tolerance": [policy.territories.tolerance_of(c) for c in plan.balance],
        "kmeans_max_deviation": [plan.baseline.get(c) for c in plan.balance],
    })
    pictures = {
        "balance_chart": balance_bars(plan.territories, policy.territories, settings.reports_dir / "territory_balance.png",
                                      f"Balance per criterion ({len(plan.territories)} territories)"),
    }
    if plan.basis == "geo":
        pictures["territory_map"] = territory_map(accounts, plan.assignments, reps,
                                                  settings.reports_dir / "territory_map.png",
                                                  f"{len(plan.territories)} territories, rep homes marked")
    yield MaterializeResult(
        asset_key="territories",
        metadata={
            "basis": plan.basis,
            "territories": MetadataValue.int(len(plan.territories)),
            "balance_vs_kmeans": MetadataValue.md(markdown(balance)),
            "compactness_vs_kmeans": MetadataValue.float(float(plan.compactness_vs_kmeans or 0.0)),
            "solver": MetadataValue.json({k: str(v) for k, v in plan.solver.items()}),
            "territory_table": MetadataValue.md(markdown(plan.territories)),
            "warnings": MetadataValue.json(list(plan.warnings)),
            "moved_share": MetadataValue.float(plan.moved_share),
            "placement": ("new accounts placed; planned accounts kept with their reps (policy replan_existing: "
                          "false)" if kept else "every account planned"),
            **{name: _embedded_png(path) for name, path in pictures.items()},
        },
    )
    yield MaterializeResult(
        asset_key="territory_assignments",
        metadata={"rows": MetadataValue.int(len(assignments)),
                  "moved": MetadataValue.int(int(assignments["is_moved"].sum()))},
    )
    yield MaterializeResult(asset_key="routing_decisions", metadata={"appended": MetadataValue.int(len(routing))})


def scenario_reps(reps: pd.DataFrame, owners: pd.DataFrame, add: int, remove: list[str],
                  owner_roles: list[str]) -> pd.DataFrame:
    """The reps of a scenario: named reps removed, and `add` new owner reps homed at the live plan's
    most loaded territories' centres (where extra hands relieve most). An added rep takes the owner
    role most kept owners have, so it owns a territory even where other roles (SDRs) outnumber owners."""
    kept = reps[~reps["rep_id"].astype(str).isin(remove)]
    busiest = owners.sort_values("account_count", ascending=False).head(add)
    roles = kept["role"] if "role" in kept else pd.Series(dtype="object")
    owning = roles[roles.isin(owner_roles)]
    added = pd.DataFrame({
        "rep_id": [f"scenario_rep_{i + 1}" for i in range(len(busiest))],
        "role": owning.mode().iloc[0] if not owning.empty else (owner_roles[0] if roles.notna().any() else None),
        "latitude": busiest["center_latitude"].to_numpy(),
        "longitude": busiest["center_longitude"].to_numpy(),
    })
    return pd.concat([kept, added], ignore_index=True)


def scenario_is_fresh(scenario: TerritoryScenario, policy_basis: str, live_basis: str) -> bool:
    """Whether a scenario plans from scratch: when it says so, or by default when it changes the basis."""
    if scenario.fresh is not None:
        return scenario.fresh
    return scenario.basis is not None and scenario.basis not in (policy_basis, live_basis)


def moves_against(accounts: pd.DataFrame, assignments: pd.DataFrame) -> dict:
    """Share of accounts, and of potential, whose rep in `assignments` differs from their current owner."""
    merged = accounts[["account_id", "owner_rep_id", "potential"]].merge(
        assignments[["account_id", "rep_id"]], on="account_id")
    moved = (merged["owner_rep_id"].notna() & (merged["owner_rep_id"] != merged["rep_id"])).to_numpy()
    potential = merged["potential"].astype(float).fillna(0.0).to_numpy()
    return {"moved_share": float(moved.mean()) if len(moved) else 0.0,
            "moved_potential_share": float(potential[moved].sum() / max(potential.sum(), 1e-12))}


def scenario_row(name: str, plan, live_compactness: float | None, fresh: bool = False) -> dict:
    """One row of territory_scenarios: balance per criterion, moves and compactness of a plan."""
    return {
        "scenario": name,
        "basis": plan.basis,
        "planned_fresh": fresh,
        "territories": len(plan.territories),
        **{f"max_dev_{c}": v for c, v in plan.balance.items()},
        "moved_share": plan.moved_share,
        "moved_potential_share": plan.moved_potential_share,
        "compactness_km": plan.compactness,
        "compactness_vs_live": plan.compactness / live_compactness if plan.compactness and live_compactness else None,
        "warnings": "; ".join(plan.warnings),
    }


@asset(group_name="territories", deps=["territories", "territory_assignments"], kinds={"highs", "duckdb"})
def territory_scenarios(context: AssetExecutionContext, settings: PipelineSettings) -> MaterializeResult:
    """What-if plans from the policy's scenarios (reps added or removed, other tolerance or basis), each
    planned from the live owners and compared side by side with the live plan, which stays untouched."""
    policy = settings.load_policy()
    with settings.reader() as con:
        accounts, _, reps, _ = read_plan_inputs(con, policy.territories.late_stages)
        live = read_frame(con, "select * from territories")
    # The live policy re-planned from the live owners is the yardstick: what changes if nothing changes.
    live_plan = plan_territories(accounts, reps, policy.territories, policy.workload_weights, kmeans_baseline=False)
    live_compactness = live_plan.compactness
    rows = [scenario_row("live_policy", live_plan, live_compactness)]
    for scenario in policy.territories.scenarios:
        update = {k: v for k, v in {"tolerance": scenario.tolerance, "basis": scenario.basis}.items() if v is not None}
        fresh = scenario_is_fresh(scenario, policy.territories.basis, live_plan.basis)
        variant: TerritoryPolicy = policy.territories.model_copy(update=update)
        # A fresh plan knows no current owners (they would anchor it to the old shape); its moves are
        # still counted against them.
        plan = plan_territories(accounts.assign(owner_rep_id=None) if fresh else accounts,
                                scenario_reps(reps, live, scenario.add_reps, scenario.remove_reps,
                                              policy.territories.owner_roles), variant,
                                policy.workload_weights, kmeans_baseline=False)
        row = scenario_row(scenario.name, plan, live_compactness, fresh)
        if fresh:
            row |= moves_against(accounts, plan.assignments)
        rows.append(row)
    table = pd.DataFrame(rows)
    with settings.writer() as con:
        replace_table(con, "territory_scenarios", table)
    context.log.info(f"{len(table) - 1} scenarios planned beside the live plan")
    return MaterializeResult(metadata={"scenarios": MetadataValue.md(markdown(table.drop(columns="warnings")))})
