"""Applying a rebalance proposal: a person's decision, recorded with who and when, written by the single writer."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime

import pandas as pd

from ml.monitors import coverage
from ml.rebalance import apply_moves
from orchestration.resources import PipelineSettings
from orchestration.tables import append_table, read_frame, replace_table, table_exists

TERRITORY_TOTALS_SQL = """
select a.territory_id, count(*) as account_count, sum(s.potential) as potential,
       sum(case a.tier {weights} end) as workload,
       count(*) filter (where a.tier = 'A') as a_count, count(*) filter (where a.tier = 'B') as b_count,
       count(*) filter (where a.tier = 'C') as c_count
from territory_assignments a join account_scores s using (account_id)
group by a.territory_id
"""


def apply_proposal(settings: PipelineSettings, proposal_id: str, applied_by: str | None = None) -> dict:
    """Move the proposal's accounts, refresh territory totals and coverage, and record the decision."""
    policy = settings.load_policy()
    with settings.reader() as con:
        if not table_exists(con, "rebalance_proposals"):
            raise ValueError(f"{settings.warehouse_path} has no rebalance proposals; run `territory run` first")
        moves = read_frame(con, "select * from rebalance_proposals where proposal_id = ? order by move_number",
                           [proposal_id])
        if moves.empty:
            known = read_frame(con, "select distinct proposal_id from rebalance_proposals")["proposal_id"].tolist()
            raise ValueError(f"no rebalance proposal {proposal_id}; known proposals: {known[-5:]}")
        if table_exists(con, "rebalance_applications") and con.execute(
                "select count(*) from rebalance_applications where proposal_id = ?", [proposal_id]).fetchall()[0][0]:
            raise ValueError(f"rebalance proposal {proposal_id} was already applied (see rebalance_applications)")
        assignments = read_frame(con, "select * from territory_assignments")
        reps = read_frame(con, "select * from rep_capacity where rep_id in (select rep_id from territories)")
    applied_at = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
    who = applied_by or getpass.getuser()
    moved = apply_moves(assignments, moves)
    load = coverage(moved[["account_id", "rep_id", "tier"]], reps, policy.monitors, f"apply-{proposal_id}")
    audit = moves.merge(moved[["account_id", "owner_role", "sla_hours"]], on="account_id").assign(
        lead_id=lambda d: d["account_id"], rep_id=lambda d: d["to_rep_id"], territory_id=lambda d: d["to_territory_id"],
        reason=lambda d: f"rebalance {proposal_id} applied by {who}: " + d["reason"], routed_at=applied_at,
        sla_due_at=lambda d: applied_at + pd.to_timedelta(d["sla_hours"].astype(float), unit="h"),
        run_id=f"apply-{proposal_id}", source="rebalance",
    )[["lead_id", "account_id", "territory_id", "rep_id", "owner_role", "tier", "sla_hours", "sla_due_at",
       "reason", "routed_at", "run_id", "source"]]
    weights = " ".join(f"when '{t}' then {w}" for t, w in policy.workload_weights.items())
    with settings.writer() as con:
        replace_table(con, "territory_assignments", moved)
        totals = read_frame(con, TERRITORY_TOTALS_SQL.format(weights=weights))
        con.register("totals", totals)
        con.execute("""
            update territories t set account_count = n.account_count, potential = n.potential,
                workload = n.workload, a_count = n.a_count, b_count = n.b_count, c_count = n.c_count
            from totals n where t.territory_id = n.territory_id
        """)
        con.unregister("totals")
        replace_table(con, "monitor_coverage", load)
        append_table(con, "routing_decisions", audit)
        append_table(con, "rebalance_applications", pd.DataFrame({
            "proposal_id": [proposal_id], "applied_by": [who], "applied_at": [applied_at], "moves": [len(moves)],
        }))
    return {"moves": len(moves), "applied_by": who, "applied_at": applied_at,
            "max_utilization": float(load["utilization"].max()), "alerts": int((load["status"] == "alert").sum())}
