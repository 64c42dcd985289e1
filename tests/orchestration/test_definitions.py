"""The Definitions load without touching data, and form one connected lineage with checks attached."""

from __future__ import annotations

from pathlib import Path

from dagster import AssetKey

from orchestration.definitions import FULL_PIPELINE_JOB, build_definitions
from orchestration.resources import PipelineSettings


def load(tmp_path: Path):
    warehouse = tmp_path / "never" / "warehouse.duckdb"
    defs = build_definitions(PipelineSettings(warehouse=str(warehouse)))
    return defs, warehouse


def test_loading_definitions_opens_no_database(tmp_path: Path) -> None:
    defs, warehouse = load(tmp_path)
    assert defs.resolve_job_def(FULL_PIPELINE_JOB) is not None
    assert not warehouse.parent.exists()


def test_lineage_is_one_connected_graph_from_raw_to_monitors(tmp_path: Path) -> None:
    graph = load(tmp_path)[0].resolve_asset_graph()
    keys = set(graph.get_all_asset_keys())
    upstream_of_copy = graph.upstream_key_iterator(AssetKey("analytics_copy"))
    ancestors = set(upstream_of_copy)
    for key in [AssetKey(["raw", "accounts"]), AssetKey(["raw", "engagement_events"]), AssetKey("account_features"),
                AssetKey("account_scores"), AssetKey("territory_assignments"), AssetKey("monitor_coverage")]:
        assert key in keys, key
    assert AssetKey("monitor_score_drift") in ancestors
    # Every asset feeds, directly or not, the published analyst copy, except the copy itself.
    transitive: set[AssetKey] = set()
    frontier = {AssetKey("analytics_copy")}
    while frontier:
        parents = set().union(*(graph.get(k).parent_keys for k in frontier)) - transitive
        transitive |= parents
        frontier = parents
    orphans = {k for k in keys if k not in transitive and k != AssetKey("analytics_copy")}
    # The report is a file for people, not a table for the analyst copy.
    assert orphans <= {AssetKey(["raw", "load_manifest"]), AssetKey("territory_report")}, orphans


def test_groups_match_the_domains(tmp_path: Path) -> None:
    graph = load(tmp_path)[0].resolve_asset_graph()
    group = {key: graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert group[AssetKey(["raw", "accounts"])] == "ingest"
    assert group[AssetKey("stg_crm__accounts")] == "ingest"
    assert group[AssetKey("account_features")] == "features"
    assert group[AssetKey("account_scores")] == "scoring"
    assert group[AssetKey("territories")] == "territories"
    assert group[AssetKey("monitor_score_drift")] == "monitors"
    assert group[AssetKey("kpi_by_tier")] == group[AssetKey("int_kpis_rolled_up")] == "kpis"


def test_kpi_marts_run_after_the_python_assets_they_read(tmp_path: Path) -> None:
    graph = load(tmp_path)[0].resolve_asset_graph()
    ancestors = set(graph.upstream_key_iterator(AssetKey("kpi_by_tier")))
    # The pipeline sources are the Python assets themselves, not separate source assets.
    assert {AssetKey("territory_assignments"), AssetKey("monitor_sla"), AssetKey("score_history"),
            AssetKey("account_scores"), AssetKey("account_features")} <= ancestors
    assert not any(key.path[0] == "pipeline" for key in graph.get_all_asset_keys())
    # Two dbt steps: the features before scoring, the KPI marts after the SLA monitor.
    assert graph.get(AssetKey("account_features")).assets_def is not graph.get(AssetKey("kpi_by_tier")).assets_def
    assert {AssetKey("kpi_by_tier"), AssetKey("kpi_by_rep"), AssetKey("kpi_by_territory")} <= \
        graph.get(AssetKey("analytics_copy")).parent_keys


def test_checks_attached_to_inputs_scores_and_plan(tmp_path: Path) -> None:
    graph = load(tmp_path)[0].resolve_asset_graph()
    checks = {(c.asset_key, c.name) for c in graph.asset_check_keys}
    assert (AssetKey(["raw", "accounts"]), "ge_raw_accounts") in checks
    assert (AssetKey(["raw", "opportunities"]), "ge_raw_opportunities") in checks
    assert (AssetKey("account_scores"), "ge_account_scores") in checks
    assert (AssetKey("territory_assignments"), "every_account_assigned_once") in checks
    dbt_checks = {c for c in checks if c[0] == AssetKey("account_features")}
    assert any(name.startswith("unique_account_features") for _, name in dbt_checks)


def test_nightly_schedule_runs_the_full_job(tmp_path: Path) -> None:
    schedule = load(tmp_path)[0].resolve_schedule_def("nightly_full_pipeline")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.job_name == FULL_PIPELINE_JOB
