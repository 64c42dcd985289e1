"""Territory assets: balanced assignment of accounts to reps, joined with the tier policy for routing and SLAs."""

from datetime import UTC, datetime

import pandas as pd
from dagster import AssetExecutionContext, AssetSpec, MaterializeResult, MetadataValue, multi_asset

from ml.territories import plan_territories
from orchestration.resources import PipelineSettings
from orchestration.tables import append_table, markdown, read_frame, replace_table, table_exists

ACCOUNTS_SQL = """
select f.account_id, f.latitude, f.longitude, f.industry, f.parent_account_id,
       s.potential, s.tier, s.conversion_probability,
       coalesce({previous_rep}, f.owner_rep_id) as owner_rep_id
from account_features f
join account_scores s using (account_id)
{previous_join}
order by f.account_id
"""


def read_plan_inputs(con) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Accounts with scores and their current owner (last plan first, else the CRM owner), reps, policy."""
    has_previous = table_exists(con, "territory_assignments")
    accounts = read_frame(con, ACCOUNTS_SQL.format(
        previous_rep="p.rep_id" if has_previous else "null",
        previous_join="left join territory_assignments p using (account_id)" if has_previous else "",
    ))
    previous = (
        read_frame(con, "select account_id, territory_id, rep_id from territory_assignments")
        if has_previous else pd.DataFrame(columns=["account_id", "territory_id", "rep_id"])
    )
    reps = read_frame(con, "select * from rep_capacity order by rep_id")
    tier_policy = read_frame(con, "select tier, owner_role, sla_hours, play from tier_policy")
    return accounts, previous, reps, tier_policy


def routing_for_changes(assignments: pd.DataFrame, previous: pd.DataFrame, basis: str,
                        routed_at: datetime, run_id: str) -> pd.DataFrame:
    """One audit row per account whose owner is new or changed in this plan."""
    merged = assignments.merge(
        previous.rename(columns={"rep_id": "last_rep_id", "territory_id": "last_territory_id"}),
        on="account_id", how="left",
    )
    changed = merged[merged["last_rep_id"].isna() | (merged["last_rep_id"] != merged["rep_id"])].copy()
    first_time = changed["last_rep_id"].isna()
    rule = "nearest balanced geographic territory" if basis == "geo" else "industry-grouped territory"
    moved = "rebalance: moved from " + changed["last_rep_id"].astype(str) + " to " + changed["rep_id"]
    changed["reason"] = moved.where(~first_time, "initial plan: " + rule)
    changed["routed_at"] = routed_at
    changed["sla_due_at"] = routed_at + pd.to_timedelta(changed["sla_hours"].astype(float), unit="h")
    changed["run_id"] = run_id
    return changed[[
        "account_id", "territory_id", "rep_id", "owner_role", "tier", "sla_hours", "sla_due_at", "reason",
        "routed_at", "run_id",
    ]].rename(columns={"account_id": "lead_id"}).assign(account_id=lambda d: d["lead_id"], source="territory_plan")


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
    """Assign every account to exactly one rep's territory, balanced on potential and workload."""
    policy = settings.load_policy()
    with settings.reader() as con:
        accounts, previous, reps, tier_policy = read_plan_inputs(con)
    plan = plan_territories(accounts, reps, policy.territories, policy.workload_weights)
    for warning in plan.warnings:
        context.log.warning(warning)

    assignments = (
        plan.assignments.merge(accounts[["account_id", "tier"]], on="account_id", how="left")
        .merge(tier_policy, on="tier", how="left")
    )
    routed_at = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
    routing = routing_for_changes(assignments, previous, plan.basis, routed_at, context.run.run_id)
    with settings.writer() as con:
        replace_table(con, "territories", plan.territories)
        replace_table(con, "territory_assignments", assignments[[
            "account_id", "territory_id", "rep_id", "tier", "owner_role", "sla_hours", "play",
            "previous_rep_id", "is_moved",
        ]])
        append_table(con, "routing_decisions", routing)

    balance = pd.DataFrame({
        "criterion": list(plan.balance),
        "plan_max_deviation": list(plan.balance.values()),
        "kmeans_max_deviation": [plan.baseline.get(c) for c in plan.balance],
    })
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
        },
    )
    yield MaterializeResult(
        asset_key="territory_assignments",
        metadata={"rows": MetadataValue.int(len(assignments)),
                  "moved": MetadataValue.int(int(assignments["is_moved"].sum()))},
    )
    yield MaterializeResult(asset_key="routing_decisions", metadata={"appended": MetadataValue.int(len(routing))})
