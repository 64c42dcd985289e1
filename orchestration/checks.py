"""Asset checks: Great Expectations suites on inputs and scores, plan integrity, balance and monitor status."""

from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, MetadataValue, asset_check

from expectations.runner import run_suite
from orchestration.resources import PipelineSettings
from orchestration.tables import read_frame, territory_balance


def _suite_check(settings: PipelineSettings, suite: str, sql: str) -> AssetCheckResult:
    with settings.reader() as con:
        frame = read_frame(con, sql)
    outcome = run_suite(suite, frame)
    return AssetCheckResult(
        passed=outcome.success,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "evaluated": MetadataValue.int(outcome.evaluated),
            "failed": MetadataValue.json(outcome.failed),
            "errored": MetadataValue.json(outcome.errored),
        },
    )


@asset_check(asset=AssetKey(["raw", "accounts"]), description="Great Expectations suite raw_accounts.")
def ge_raw_accounts(settings: PipelineSettings) -> AssetCheckResult:
    return _suite_check(settings, "raw_accounts", "select * from raw.accounts")


@asset_check(asset=AssetKey(["raw", "opportunities"]), description="Great Expectations suite raw_opportunities.")
def ge_raw_opportunities(settings: PipelineSettings) -> AssetCheckResult:
    return _suite_check(settings, "raw_opportunities", "select * from raw.opportunities")


@asset_check(asset="account_scores", description="Great Expectations suite account_scores.")
def ge_account_scores(settings: PipelineSettings) -> AssetCheckResult:
    return _suite_check(settings, "account_scores", "select * from account_scores")


@asset_check(asset="territory_assignments", description="Every scored account is in exactly one territory.")
def every_account_assigned_once(settings: PipelineSettings) -> AssetCheckResult:
    with settings.reader() as con:
        missing, duplicated, unowned = con.execute("""
            select
                (select count(*) from account_scores s
                 where not exists (select 1 from territory_assignments a where a.account_id = s.account_id)),
                (select count(*) from (select account_id from territory_assignments
                                        group by account_id having count(*) > 1)),
                (select count(*) from territory_assignments where rep_id is null or territory_id is null)
        """).fetchall()[0]
    return AssetCheckResult(
        passed=missing == 0 and duplicated == 0 and unowned == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={"unassigned": missing, "assigned_twice": duplicated, "without_owner": unowned},
    )


@asset_check(asset="territories", description="Potential and workload per territory within the policy tolerance.")
def territories_balanced(settings: PipelineSettings) -> AssetCheckResult:
    tolerance = settings.load_policy().territories.tolerance
    with settings.reader() as con:
        named = territory_balance(con)
    worst = max(named.values())
    return AssetCheckResult(
        passed=worst <= tolerance + 1e-9,
        severity=AssetCheckSeverity.WARN,
        metadata={**{k: MetadataValue.float(v) for k, v in named.items()},
                  "tolerance": MetadataValue.float(tolerance)},
    )


def _status_check(settings: PipelineSettings, table: str, key: str) -> AssetCheckResult:
    with settings.reader() as con:
        alerts = read_frame(con, f"select {key} from {table} where status = 'alert'")
    return AssetCheckResult(
        passed=alerts.empty,
        severity=AssetCheckSeverity.WARN,
        metadata={"alerts": MetadataValue.json(alerts[key].astype(str).tolist())},
    )


@asset_check(asset="monitor_score_drift", description="No score or main feature drifted past the PSI alert level.")
def no_score_drift_alert(settings: PipelineSettings) -> AssetCheckResult:
    return _status_check(settings, "monitor_score_drift", "feature")


@asset_check(asset="monitor_coverage", description="No rep's A-tier load is above capacity.")
def no_coverage_alert(settings: PipelineSettings) -> AssetCheckResult:
    return _status_check(settings, "monitor_coverage", "rep_id")


CHECKS = [
    ge_raw_accounts, ge_raw_opportunities, ge_account_scores, every_account_assigned_once, territories_balanced,
    no_score_drift_alert, no_coverage_alert,
]
