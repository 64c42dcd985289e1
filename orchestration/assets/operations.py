"""Operations assets: SLA compliance of first touches, and rebalance proposals when balance or coverage is off."""

from datetime import UTC, datetime

import pandas as pd
from dagster import AssetExecutionContext, AssetSpec, MaterializeResult, MetadataValue, asset, multi_asset

from ml.policy import BALANCE_CRITERIA
from ml.rebalance import BALANCE_COLUMNS, propose_rebalance
from ml.sla import breaches, first_touches, sla_compliance
from orchestration.assets.territories import read_plan_inputs
from orchestration.resources import PipelineSettings
from orchestration.tables import append_table, markdown, read_frame, replace_table, table_exists

# Routed leads are assigned when routed; accounts of the plan when they entered the CRM.
ASSIGNMENTS_SQL = """
with routed as (
    select account_id, rep_id, tier, sla_hours, routed_at as assigned_at
    from routing_decisions
    where source = 'route'
    qualify row_number() over (partition by account_id order by routed_at desc, rep_id) = 1
),

planned as (
    select a.account_id, a.rep_id, a.tier, a.sla_hours, acc.created_at as assigned_at
    from territory_assignments as a
    left join stg_crm__accounts as acc on a.account_id = acc.account_id
    where a.account_id not in (select account_id from routed)
)

select * from routed
union all by name
select * from planned
"""


PROPOSALS_DDL = """
create table if not exists rebalance_proposals (
    proposal_id varchar, move_number bigint, account_id varchar, tier varchar, from_rep_id varchar,
    to_rep_id varchar, to_territory_id varchar, step varchar, reason varchar, from_a_load_before double,
    from_a_load_after double, to_a_load_before double, to_a_load_after double, max_utilization_before double,
    max_utilization_after double, {balance}, proposed_at timestamp, run_id varchar, reaches_tolerance boolean
)
""".format(balance=", ".join(f"{c} double" for c in BALANCE_COLUMNS))


@multi_asset(
    specs=[
        AssetSpec("monitor_sla", group_name="monitors",
                  deps=["territory_assignments", "routing_decisions", "stg_crm__activities", "stg_crm__accounts",
                        "run_as_of"],
                  description="First touch after assignment against the tier's SLA, per rep and tier: compliance, "
                              "median and 90th-percentile hours, breaches."),
        AssetSpec("sla_breaches", group_name="monitors", deps=["monitor_sla"],
                  description="Every assignment whose first touch came after its SLA due time, or never came."),
    ],
)
def monitor_sla(context: AssetExecutionContext, settings: PipelineSettings):
    """Speed to lead: how fast each rep touched newly assigned accounts, against the tier policy's SLA hours."""
    policy = settings.load_policy()
    with settings.reader() as con:
        assignments = read_frame(con, ASSIGNMENTS_SQL)
        activities = read_frame(con, "select account_id, occurred_at from stg_crm__activities")
        as_of = con.execute("select max(as_of_date) from run_as_of").fetchall()[0][0]
    # The end of the as-of day, or now when the leads routed today are later than the export.
    judged_at = max(pd.Timestamp(as_of) + pd.Timedelta(days=1), pd.Timestamp(datetime.now(UTC).replace(tzinfo=None)))
    touches = first_touches(assignments, activities, judged_at)
    per_rep = sla_compliance(touches, policy.operations.sla_compliance_alert, context.run.run_id)
    late = breaches(touches)
    with settings.writer() as con:
        replace_table(con, "monitor_sla", per_rep)
        replace_table(con, "sla_breaches", late)
    status = touches["sla_status"].value_counts().to_dict()
    judged = status.get("met", 0) + status.get("breached", 0)
    yield MaterializeResult(asset_key="monitor_sla", metadata={
        "status_counts": MetadataValue.json({k: int(v) for k, v in status.items()}),
        "compliance": MetadataValue.float(status.get("met", 0) / judged if judged else float("nan")),
        "median_hours_to_first_touch": MetadataValue.float(float(touches["hours_to_first_touch"].median())),
        "per_rep_and_tier": MetadataValue.md(markdown(per_rep)),
    })
    yield MaterializeResult(asset_key="sla_breaches", metadata={"rows": MetadataValue.int(len(late))})


@asset(group_name="monitors", deps=["monitor_coverage", "territory_assignments", "account_scores", "rep_capacity"])
def rebalance_proposals(context: AssetExecutionContext, settings: PipelineSettings) -> MaterializeResult:
    """When a territory is outside its balance band or an A-tier load is over capacity, propose few moves
    back within both (the planner re-plans from the current owners); a person applies them."""
    policy = settings.load_policy()
    with settings.reader() as con:
        accounts, _, reps, _ = read_plan_inputs(con, policy.territories.late_stages)
        territories = read_frame(con, "select territory_id, rep_id from territories")
        capacity = read_frame(con, "select rep_id, capacity from monitor_coverage")
        applied = (set(read_frame(con, "select proposal_id from rebalance_applications")["proposal_id"])
                   if table_exists(con, "rebalance_applications") else set())
    moves, reaches = propose_rebalance(accounts, reps, territories, capacity, policy,
                                       policy.operations.rebalance_max_moves)
    if moves.empty:
        with settings.writer() as con:
            # Analysts and the published copy find the table even before the first proposal.
            con.execute(PROPOSALS_DDL)
        return MaterializeResult(metadata={
            "proposal": "none needed: every territory is within its balance bands and every A-tier load "
                        "within capacity"})
    proposal = moves["proposal_id"].iloc[0]
    moves = moves.assign(proposed_at=datetime.now(UTC).replace(microsecond=0, tzinfo=None),
                         run_id=context.run.run_id, reaches_tolerance=reaches)
    if proposal not in applied:
        with settings.writer() as con:
            con.execute(PROPOSALS_DDL)
            con.execute("delete from rebalance_proposals where proposal_id = ?", [proposal])
            append_table(con, "rebalance_proposals", moves)
    context.log.warning(f"rebalance proposal {proposal}: {len(moves)} moves; apply with "
                        f"`territory rebalance apply {proposal}`")
    first = moves.iloc[0]
    balance = pd.DataFrame({
        "criterion": list(BALANCE_CRITERIA),
        "max_deviation_before": [first[f"max_dev_{c}_before"] for c in BALANCE_CRITERIA],
        "max_deviation_after": [first[f"max_dev_{c}_after"] for c in BALANCE_CRITERIA],
        "tolerance": [policy.territories.tolerance_of(c) for c in BALANCE_CRITERIA],
    })
    return MaterializeResult(metadata={
        "proposal_id": proposal,
        "moves": MetadataValue.int(len(moves)),
        "moves_by_step": MetadataValue.json({k: int(v) for k, v in moves["step"].value_counts().items()}),
        "reaches_tolerance": MetadataValue.bool(reaches),
        "balance_before_and_after": MetadataValue.md(markdown(balance)),
        "apply_with": f"territory rebalance apply {proposal}",
        "move_table": MetadataValue.md(markdown(moves[["move_number", "account_id", "tier", "from_rep_id", "to_rep_id",
                                                       "step", "reason"]])),
    })
