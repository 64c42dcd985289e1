"""Report asset: the stakeholder HTML report, and the same charts in the Dagster UI."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from orchestration.report import build_report, data_uri
from orchestration.resources import PipelineSettings

REPORT_NAME = "territory_report.html"


@asset(group_name="monitors", kinds={"html"},
       deps=["territories", "territory_assignments", "monitor_score_drift", "monitor_coverage", "monitor_sla",
             "rebalance_proposals", "tier_lift", "kpi_by_tier"])
def territory_report(context: AssetExecutionContext, settings: PipelineSettings) -> MaterializeResult:
    """Territory map, balance per criterion, tier mix, KPIs and monitor status in one file that needs no server."""
    with settings.reader() as con:
        report = build_report(con, settings.load_policy().territories.tolerance)
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    path = settings.reports_dir / REPORT_NAME
    staging = path.with_suffix(".tmp")
    staging.write_text(report.html, encoding="utf-8")
    staging.replace(path)
    context.log.info(f"report written to {path}")
    return MaterializeResult(metadata={
        "path": MetadataValue.path(str(path)),
        **{name: MetadataValue.md(f"![{name}]({data_uri(png)})") for name, png in report.charts.items()},
    })
