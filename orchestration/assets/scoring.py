"""Scoring assets: fit, engagement and persona models trained on outcomes, calibrated, and applied to every account."""

from datetime import UTC, datetime

from dagster import AssetExecutionContext, AssetSpec, MaterializeResult, MetadataValue, multi_asset

from ml.scoring import score_accounts
from orchestration.resources import PipelineSettings
from orchestration.tables import markdown, read_frame, replace_table

SCORING_INPUTS = [
    "account_features", "opportunity_outcomes", "account_technologies", "account_attribute_values",
    "account_signal_features",
]
SCORING_TABLES = {
    "account_scores": "Calibrated conversion probability, priority score, tier A/B/C and top factors per account.",
    "score_model_metrics": "AUC, Brier, ECE, log loss, base rate and n per model version, layer and split.",
    "score_weights": "Interpretable weights of each layer's model and of the learned combination.",
    "tier_lift": "Conversion rate per tier on held-out outcomes: A should beat B, B should beat C.",
}


@multi_asset(
    specs=[
        AssetSpec(name, group_name="scoring", description=text, deps=SCORING_INPUTS, kinds={"scikit-learn", "duckdb"})
        for name, text in SCORING_TABLES.items()
    ],
)
def account_scoring(context: AssetExecutionContext, settings: PipelineSettings):
    """Train and calibrate the layer models on won/lost outcomes, then score and tier every account."""
    policy = settings.load_policy()
    with settings.reader() as con:
        features = read_frame(con, "select * from account_features order by account_id")
        outcomes = read_frame(con, "select * from opportunity_outcomes")
        technologies = read_frame(con, "select * from account_technologies")
        attributes = read_frame(con, "select * from account_attribute_values")
        signals = read_frame(con, "select * from account_signal_features")
    scored_at = datetime.now(UTC).replace(microsecond=0)
    model_version = f"v{scored_at:%Y%m%d%H%M%S}"
    result = score_accounts(
        features, outcomes, technologies, attributes, signals, policy, model_version, scored_at.replace(tzinfo=None)
    )
    with settings.writer() as con:
        replace_table(con, "account_scores", result.account_scores)
        replace_table(con, "score_model_metrics", result.metrics)
        replace_table(con, "score_weights", result.weights)
        replace_table(con, "tier_lift", result.tier_lift)

    tiers = result.account_scores["tier"].value_counts().reindex(["A", "B", "C"], fill_value=0)
    test_metrics = result.metrics[result.metrics["split"] == "test"].pivot_table(
        index="layer", columns="metric", values="value"
    ).reset_index()
    for note in result.summary.get("notes", []):
        context.log.info(note)
    yield MaterializeResult(
        asset_key="account_scores",
        metadata={
            "model_version": model_version,
            "rows": MetadataValue.int(len(result.account_scores)),
            "tier_counts": MetadataValue.json({k: int(v) for k, v in tiers.items()}),
            "low_confidence": MetadataValue.bool(bool(result.summary.get("low_confidence", False))),
            "summary": MetadataValue.json(_jsonable(result.summary)),
        },
    )
    yield MaterializeResult(
        asset_key="score_model_metrics",
        metadata={"rows": MetadataValue.int(len(result.metrics)), "test_metrics": MetadataValue.md(markdown(test_metrics))},
    )
    yield MaterializeResult(
        asset_key="score_weights",
        metadata={"rows": MetadataValue.int(len(result.weights)), "weights": MetadataValue.md(markdown(
            result.weights.reindex(result.weights["weight"].abs().sort_values(ascending=False).index)
        ))},
    )
    yield MaterializeResult(asset_key="tier_lift", metadata={"lift": MetadataValue.md(markdown(result.tier_lift))})


def _jsonable(value):
    """Summary dicts may hold numpy scalars; the UI needs plain JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value
