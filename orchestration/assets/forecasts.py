"""Forecast history asset: every run's predictions are kept, so outcomes that close later can grade them."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from orchestration.resources import PipelineSettings

SCORE_HISTORY_DDL = """
create table if not exists score_history (
    account_id varchar, predicted_as_of date, model_version varchar, conversion_probability double,
    tier varchar, scored_at timestamp, run_id varchar
)
"""


@asset(group_name="scoring", deps=["account_scores", "run_as_of"], kinds={"duckdb"})
def score_history(context: AssetExecutionContext, settings: PipelineSettings) -> MaterializeResult:
    """Append this run's conversion probabilities, keyed by the as-of date of the features they came from.

    A rerun on the same export replaces that date's rows rather than adding more, so the table grows by one
    row per account per new as-of date; the KPI marts grade each closed opportunity against the latest
    prediction dated before its close.
    """
    with settings.writer() as con:
        con.execute(SCORE_HISTORY_DDL)
        con.execute("delete from score_history where predicted_as_of = (select max(as_of_date) from run_as_of)")
        con.execute("""
            insert into score_history by name
            select s.account_id, r.as_of_date as predicted_as_of, s.model_version, s.conversion_probability,
                   s.tier, cast(s.scored_at as timestamp) as scored_at, ? as run_id
            from account_scores s cross join (select max(as_of_date) as as_of_date from run_as_of) r
        """, [context.run.run_id])
        as_of_dates, rows = con.execute("select count(distinct predicted_as_of), count(*) from score_history").fetchall()[0]
    return MaterializeResult(metadata={"rows": MetadataValue.int(rows), "as_of_dates": MetadataValue.int(as_of_dates)})
