"""Publish asset: a read-only copy of the analyst tables, replaced atomically, so queries never meet a lock."""


import os

import duckdb
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from orchestration.resources import PipelineSettings

ANALYST_TABLES = [
    "account_features", "account_scores", "score_model_metrics", "score_weights", "tier_lift", "tier_policy",
    "territories", "territory_assignments", "routing_decisions", "monitor_score_drift", "monitor_coverage",
    "rejected_rows", "input_row_counts", "monitor_sla", "sla_breaches", "rebalance_proposals",
    "territory_scenarios", "score_history", "kpi_by_tier", "kpi_by_territory", "kpi_by_rep",
    "account_attribute_profile",
]


@asset(group_name="monitors", deps=ANALYST_TABLES, kinds={"duckdb"})
def analytics_copy(context: AssetExecutionContext, settings: PipelineSettings) -> MaterializeResult:
    """Copy the analyst tables into analytics.duckdb beside the warehouse, swapping the file in one rename."""
    target = settings.analytics_path
    staging = target.with_suffix(".duckdb.tmp")
    staging.unlink(missing_ok=True)
    counts: dict[str, int] = {}
    with duckdb.connect(str(staging)) as con:
        con.execute(f"attach '{settings.warehouse_path}' as wh (read_only)")
        for table in ANALYST_TABLES:
            con.execute(f"create table {table} as select * from wh.main.{table}")
            counts[table] = con.execute(f"select count(*) from {table}").fetchall()[0][0]
        con.execute("detach wh")
    os.replace(staging, target)
    context.log.info(f"published {len(counts)} tables to {target}")
    return MaterializeResult(metadata={"path": MetadataValue.path(str(target)), "row_counts": MetadataValue.json(counts)})
