"""Asset checks: Great Expectations suites on inputs and scores, plan integrity, balance and monitor status."""

from datetime import UTC, datetime

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


def _status_check(settings: PipelineSettings, table: str, key: str, alert_severity=AssetCheckSeverity.ERROR
                  ) -> AssetCheckResult:
    """Fails with ``alert_severity`` on any alert row, with WARN when the worst is watch, so the UI ranks them."""
    with settings.reader() as con:
        flagged = read_frame(con, f"select {key} as name, status from {table} where status in ('alert', 'watch')")
    alerts = flagged[flagged["status"] == "alert"]["name"].astype(str).tolist()
    watch = flagged[flagged["status"] == "watch"]["name"].astype(str).tolist()
    return AssetCheckResult(
        passed=flagged.empty,
        severity=alert_severity if alerts else AssetCheckSeverity.WARN,
        metadata={"alerts": MetadataValue.json(alerts), "watch": MetadataValue.json(watch)},
    )


@asset_check(asset="monitor_score_drift", description="No score or main feature drifted past the PSI alert level.")
def no_score_drift_alert(settings: PipelineSettings) -> AssetCheckResult:
    return _status_check(settings, "monitor_score_drift", "feature")


@asset_check(asset="monitor_coverage", description="No rep's A-tier load is above capacity.")
def no_coverage_alert(settings: PipelineSettings) -> AssetCheckResult:
    return _status_check(settings, "monitor_coverage", "rep_id")


@asset_check(asset="account_scores", description="The scoring model is younger than the policy's staleness limits.")
def model_not_stale(settings: PipelineSettings) -> AssetCheckResult:
    limits = settings.load_policy().operations
    with settings.reader() as con:
        version, trained = con.execute("select any_value(model_version), max(scored_at) from account_scores").fetchall()[0]
    age_days = (datetime.now(UTC).replace(tzinfo=None) - trained).total_seconds() / 86400
    return AssetCheckResult(
        passed=age_days <= limits.model_stale_watch_days,
        severity=AssetCheckSeverity.ERROR if age_days > limits.model_stale_alert_days else AssetCheckSeverity.WARN,
        metadata={"model_version": version, "age_days": MetadataValue.float(age_days),
                  "watch_days": limits.model_stale_watch_days, "alert_days": limits.model_stale_alert_days},
    )


@asset_check(asset="territories", description="Every territory has an owner rep who is still in the reps file.")
def territories_have_owner(settings: PipelineSettings) -> AssetCheckResult:
    with settings.reader() as con:
        orphaned = read_frame(con, """
            select t.territory_id from territories t
            where t.rep_id is null or t.rep_id not in (select rep_id from rep_capacity)
            order by 1
        """)["territory_id"].astype(str).tolist()
    return AssetCheckResult(passed=not orphaned, severity=AssetCheckSeverity.ERROR,
                            metadata={"territories_without_owner": MetadataValue.json(orphaned)})


@asset_check(asset="monitor_sla", description="First-touch SLA compliance per rep and tier is above the policy floor.")
def sla_compliance_ok(settings: PipelineSettings) -> AssetCheckResult:
    # Slow first touches are a team's performance to follow up, not wrong data: a warning, never an error.
    return _status_check(settings, "monitor_sla", "rep_id || ':' || tier", AssetCheckSeverity.WARN)


@asset_check(asset="account_scores", description="The model had enough outcomes to be trusted (policy minimums).")
def model_confident(settings: PipelineSettings) -> AssetCheckResult:
    with settings.reader() as con:
        flagged = con.execute(
            "select coalesce(max(value), 1) from score_model_metrics where metric = 'low_confidence'"
        ).fetchall()[0][0]
    return AssetCheckResult(
        passed=flagged == 0,
        severity=AssetCheckSeverity.WARN,
        description=None if flagged == 0 else "scores come from a low-confidence model: too few outcomes or accounts",
        metadata={"low_confidence": MetadataValue.bool(bool(flagged))},
    )


CHECKS = [
    ge_raw_accounts, ge_raw_opportunities, ge_account_scores, every_account_assigned_once, territories_balanced,
    no_score_drift_alert, no_coverage_alert, model_confident, model_not_stale, territories_have_owner, sla_compliance_ok,
]
