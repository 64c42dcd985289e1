"""Monitor assets: score and feature drift against the previous run, and A-tier coverage load per rep."""


import pandas as pd
from dagster import AssetExecutionContext, AssetSpec, MaterializeResult, MetadataValue, multi_asset

from ml.monitors import coverage, score_drift
from orchestration.resources import PipelineSettings
from orchestration.tables import markdown, read_frame, replace_table, table_exists

SCORE_COLUMNS = ["conversion_probability", "priority_score", "fit_score", "engagement_score", "persona_score"]
# The features whose drift matters most to the score; those missing from an export are skipped.
MAIN_FEATURES = [
    "fit_log_employees", "fit_log_annual_revenue", "fit_technology_count", "eng_events_90d",
    "eng_decayed_intensity_90d", "eng_pricing_views_30d", "persona_engaged_icp_personas_90d",
]
REFERENCE_TABLE = "monitor_reference"


def current_snapshot(con) -> pd.DataFrame:
    feature_columns = set(read_frame(con, "describe account_features")["column_name"])
    features = [c for c in MAIN_FEATURES if c in feature_columns]
    selected = ", ".join([f"s.{c}" for c in SCORE_COLUMNS] + [f"f.{c}" for c in features])
    return read_frame(con, f"select s.account_id, {selected} from account_scores s join account_features f "
                           "using (account_id)")


@multi_asset(
    specs=[
        AssetSpec("monitor_score_drift", group_name="monitors", deps=["account_scores", "account_features"],
                  description="Population stability index of each score and main feature against the previous run."),
        AssetSpec("monitor_coverage", group_name="monitors", deps=["territory_assignments", "rep_capacity"],
                  description="A-tier load against capacity per owner rep, with ok / watch / alert status."),
    ],
)
def monitors(context: AssetExecutionContext, settings: PipelineSettings):
    """Compare this run's scores with the last run's, and each rep's A-tier load with capacity."""
    policy = settings.load_policy()
    with settings.reader() as con:
        current = current_snapshot(con)
        reference = read_frame(con, f"select * from {REFERENCE_TABLE}") if table_exists(con, REFERENCE_TABLE) else None
        assignments = read_frame(con, "select account_id, rep_id, tier from territory_assignments")
        reps = read_frame(con, "select * from rep_capacity where rep_id in (select rep_id from territories)")
    columns = [c for c in current.columns if c not in ("account_id", "run_id") and current[c].notna().any()]
    if reference is not None:
        columns = [c for c in columns if c in reference.columns]
    drift = score_drift(current, reference, columns, policy.monitors, context.run.run_id)
    load = coverage(assignments, reps, policy.monitors, context.run.run_id)
    with settings.writer() as con:
        replace_table(con, "monitor_score_drift", drift)
        replace_table(con, "monitor_coverage", load)
        # The snapshot remembers its run, so the next run's drift rows name their reference.
        replace_table(con, REFERENCE_TABLE, current.assign(run_id=context.run.run_id))

    yield MaterializeResult(
        asset_key="monitor_score_drift",
        metadata={
            "first_run": MetadataValue.bool(reference is None),
            "status_counts": MetadataValue.json(drift["status"].value_counts().to_dict()),
            "drift": MetadataValue.md(markdown(drift.sort_values("psi", ascending=False))),
        },
    )
    yield MaterializeResult(
        asset_key="monitor_coverage",
        metadata={
            "status_counts": MetadataValue.json(load["status"].value_counts().to_dict()),
            "coverage": MetadataValue.md(markdown(load.sort_values("utilization", ascending=False))),
        },
    )
