"""Scoring assets: fit, engagement and persona models trained on outcomes, calibrated, and applied to every account."""

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import pandas as pd
from dagster import AssetExecutionContext, AssetSpec, Config, MaterializeResult, MetadataValue, multi_asset

from ml.model_registry import ModelRegistry, challenger_wins
from ml.policy import Policy
from ml.scoring import ScoringResult, binary_metrics, reliability_table, score_accounts, score_with_model
from orchestration.resources import PipelineSettings
from orchestration.tables import markdown, read_frame, replace_table

SCORING_INPUTS = [
    "account_features", "rep_capacity", "opportunity_outcomes", "account_technologies", "account_attribute_values",
    "account_attribute_profile",
    "account_signal_features", "training_features", "training_signal_features", "account_persona_engagement",
    "training_persona_engagement",
]
# Engaged contacts per persona enter scoring as persona-layer signals, one per persona of the seed.
PERSONA_SIGNALS = ("select {key}, 'persona' as layer, 'engaged_' || persona || '_contacts_90d' as signal, "
                   "cast(engaged_contacts_90d as double) as value, null::varchar as value_text from {table}")
SCORING_TABLES = {
    "account_scores": "Calibrated conversion probability, priority score, tier A/B/C and top factors per account.",
    "score_model_metrics": "AUC, Brier, ECE, log loss, base rate and n per model version, layer and split.",
    "score_weights": "Interpretable weights of each layer's model and of the learned combination.",
    "tier_lift": "Conversion rate per tier on held-out outcomes: A should beat B, B should beat C.",
}


class ScoringInputs(NamedTuple):
    """The marts scoring reads; reps (rep_id, role) set the A-tier capacity."""

    features: pd.DataFrame
    outcomes: pd.DataFrame
    technologies: pd.DataFrame
    attributes: pd.DataFrame
    signals: pd.DataFrame
    training_features: pd.DataFrame
    training_signals: pd.DataFrame
    reps: pd.DataFrame


def read_scoring_inputs(con) -> ScoringInputs:
    """The marts scoring reads, persona engagement as persona-layer signals."""
    return ScoringInputs(
        features=read_frame(con, "select * from account_features order by account_id"),
        outcomes=read_frame(con, "select * from opportunity_outcomes"),
        technologies=read_frame(con, "select * from account_technologies"),
        attributes=read_frame(con, "select v.* from account_attribute_values v "
                                   "join account_attribute_profile p using (attribute) where p.used_as_feature"),
        signals=read_frame(con, "select account_id, layer, signal, value, value_text from account_signal_features "
                                "union all " + PERSONA_SIGNALS.format(key="account_id", table="account_persona_engagement")),
        training_features=read_frame(con, "select * from training_features"),
        training_signals=read_frame(
            con, "select opportunity_id, layer, signal, value, value_text from training_signal_features union all "
            + PERSONA_SIGNALS.format(key="opportunity_id", table="training_persona_engagement")),
        reps=read_frame(con, "select rep_id, role from rep_capacity"),
    )


class ScoringConfig(Config):
    """Whether this run trains a challenger (quarterly, and by default from the CLI) or scores with the champion."""

    train_challenger: bool = True


@multi_asset(
    specs=[
        AssetSpec(name, group_name="scoring", description=text, deps=SCORING_INPUTS, kinds={"scikit-learn", "duckdb"})
        for name, text in SCORING_TABLES.items()
    ],
)
def account_scoring(context: AssetExecutionContext, config: ScoringConfig, settings: PipelineSettings):
    """Train a challenger on won/lost outcomes (or keep the champion), then score and tier every account."""
    policy = settings.load_policy()
    with settings.reader() as con:
        marts = read_scoring_inputs(con)
    scored_at = datetime.now(UTC).replace(microsecond=0)
    registry = ModelRegistry(settings.champion_path.parent)
    champion = registry.champion()
    a_capacity = a_tier_capacity(marts.reps, policy)
    inputs = (marts.features, marts.outcomes, marts.technologies, marts.attributes)
    if champion is not None and not config.train_challenger:
        result = score_with_model(*inputs, marts.signals, policy, champion, scored_at.replace(tzinfo=None),
                                  "challengers train on the quarterly schedule", a_capacity)
    else:
        result = score_accounts(*inputs, marts.signals, policy, f"v{scored_at:%Y%m%d%H%M%S}",
                                scored_at.replace(tzinfo=None), champion, a_capacity,
                                marts.training_features, marts.training_signals)
        result = _register(registry, result, champion, inputs, marts.signals, policy, scored_at, a_capacity)
    with settings.writer() as con:
        replace_table(con, "account_scores", result.account_scores)
        replace_table(con, "score_model_metrics", result.metrics)
        replace_table(con, "score_weights", result.weights)
        replace_table(con, "tier_lift", result.tier_lift)
        replace_table(con, "score_model_versions", _versions_frame(registry))

    tiers = result.account_scores["tier"].value_counts().reindex(["A", "B", "C"], fill_value=0)
    test_metrics = result.metrics[result.metrics["split"] == "test"].pivot_table(
        index="layer", columns="metric", values="value"
    ).reset_index()
    plot = _reliability_plot(result, policy.scoring.ece_bins, settings.reports_dir / "reliability.png")
    for key in ("kept_model", "promotion", "a_tier_cutoff"):
        if key in result.summary:
            context.log.info(f"{key}: {result.summary[key]}")
    yield MaterializeResult(
        asset_key="account_scores",
        metadata={
            "model_version": result.summary["model_version"],
            "rows": MetadataValue.int(len(result.account_scores)),
            "tier_counts": MetadataValue.json({k: int(v) for k, v in tiers.items()}),
            "low_confidence": MetadataValue.bool(bool(result.summary.get("low_confidence", False))),
            "summary": MetadataValue.json(_jsonable(result.summary)),
        },
    )
    yield MaterializeResult(
        asset_key="score_model_metrics",
        metadata={
            "rows": MetadataValue.int(len(result.metrics)),
            "test_metrics": MetadataValue.md(markdown(test_metrics)),
            **({"reliability_plot": MetadataValue.md(plot[0]), "reliability_png": MetadataValue.path(str(plot[1]))}
               if plot else {}),
        },
    )
    yield MaterializeResult(
        asset_key="score_weights",
        metadata={"rows": MetadataValue.int(len(result.weights)), "weights": MetadataValue.md(markdown(
            result.weights.reindex(result.weights["weight"].abs().sort_values(ascending=False).index)
        ))},
    )
    yield MaterializeResult(asset_key="tier_lift", metadata={"lift": MetadataValue.md(markdown(result.tier_lift))})


def a_tier_capacity(reps: pd.DataFrame, policy: Policy) -> float | None:
    """A-tier accounts the owner reps can work: the monitors' per-rep A capacity times the owner reps, up to the
    coverage watch level, so a fresh plan leaves every rep room before the coverage monitor starts to warn."""
    if reps.empty:
        return None
    roles = reps["role"].astype("string").str.upper()
    owners = roles.isin([r.upper() for r in policy.territories.owner_roles]).sum()
    # As in territory planning: when no rep has an owner role, every rep owns accounts.
    monitors = policy.monitors
    return float((owners or len(reps)) * monitors.default_a_tier_capacity * monitors.coverage_watch)


def _register(
    registry: ModelRegistry, result: ScoringResult, champion, inputs: tuple, signals: pd.DataFrame,
    policy: Policy, scored_at: datetime, a_capacity: float | None,
) -> ScoringResult:
    """Record a trained challenger; promote it when there is no champion or its held-out log loss is not worse.

    A challenger that loses leaves the champion in charge, so the published scores are the champion's.
    """
    if result.summary.get("kept_model") or result.model is None:
        return result
    summary = result.summary
    registry.record(result.model, {
        "trained_at": scored_at.isoformat(), "data_window": summary.get("data_window"),
        "features": summary.get("features", []), "layer_models": summary.get("layer_models", {}),
        "test_metrics": {k: summary.get(f"test_{k}") for k in ("auc", "brier", "ece", "log_loss")},
        "low_confidence": summary["low_confidence"],
    })
    version = result.model.model_version
    if champion is None:
        summary["promotion"] = f"{version} promoted: first model of this warehouse"
        registry.promote(version, "first model")
        return result
    held = result.held_out
    if held is None or held.empty:
        summary["promotion"] = f"{version} kept as challenger: no held-out rows to compare on"
        return score_with_model(*inputs, signals, policy, champion, scored_at.replace(tzinfo=None),
                                summary["promotion"], a_capacity)
    theirs = score_with_model(*inputs, signals, policy, champion, scored_at.replace(tzinfo=None), "comparison",
                              a_capacity)
    bins = policy.scoring.ece_bins
    p_champion = theirs.account_scores.set_index("account_id")["conversion_probability"].loc[held["account_id"]]
    p_challenger = result.account_scores.set_index("account_id")["conversion_probability"].loc[held["account_id"]]
    champion_loss = binary_metrics(held["won"], p_champion.to_numpy(), bins)["log_loss"]
    challenger_loss = binary_metrics(held["won"], p_challenger.to_numpy(), bins)["log_loss"]
    comparison = f"held-out log loss {challenger_loss:.4f} vs champion {champion.model_version} {champion_loss:.4f} on {len(held)} rows"
    extra = pd.DataFrame({
        "model_version": version, "layer": "combined", "split": "test",
        "metric": ["champion_log_loss", "challenger_log_loss"], "value": [champion_loss, challenger_loss],
    })
    if challenger_wins(challenger_loss, champion_loss):
        registry.promote(version, comparison)
        summary["promotion"] = f"{version} promoted: {comparison}"
        result.metrics = pd.concat([result.metrics, extra], ignore_index=True)
        return result
    theirs.summary["promotion"] = f"{version} not promoted (kept {champion.model_version}): {comparison}"
    theirs.metrics = pd.concat([theirs.metrics, extra], ignore_index=True)
    return theirs


def _versions_frame(registry: ModelRegistry) -> pd.DataFrame:
    rows = [
        {"model_version": v["model_version"], "status": v["status"], "trained_at": v.get("trained_at"),
         "data_window": str(v.get("data_window")), "features": ", ".join(v.get("features", [])),
         **{f"test_{k}": value for k, value in (v.get("test_metrics") or {}).items()}}
        for v in registry.versions()
    ]
    return pd.DataFrame(rows, columns=["model_version", "status", "trained_at", "data_window", "features",
                                       "test_auc", "test_brier", "test_ece", "test_log_loss"])


def _reliability_plot(result: ScoringResult, bins: int, path: Path) -> tuple[str, Path] | None:
    """Observed win rate against mean predicted probability per equal-mass bin, as PNG and markdown.

    The curve is of the pooled held-out predictions when the run trained a model (the back-test's out-of-time
    windows, or every closed outcome out-of-fold when undated: many rows, so the bins are not noise), else of
    the held-out rows.
    """
    if result.pooled is not None:
        y, p = result.pooled["won"].to_numpy(float), result.pooled["probability"].to_numpy()
        rows = ("back-test, out-of-time windows" if result.pooled_split == "back_test"
                else "out-of-fold, every closed outcome")
    elif result.held_out is not None and not result.held_out.empty:
        held = result.held_out
        y = held["won"].to_numpy(dtype=float)
        p = result.account_scores.set_index("account_id")["conversion_probability"].loc[held["account_id"]].to_numpy()
        rows = "held-out test split"
    else:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = reliability_table(y, p, bins)
    ece = binary_metrics(y, p, bins)["ece"]
    figure, axis = plt.subplots(figsize=(5, 5))
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    axis.plot(table["mean_probability"], table["observed_rate"], marker="o",
              label=f"model (ECE {ece:.3f}, {bins} equal-mass bins, n={len(y)})")
    axis.set_xlabel("mean predicted conversion probability")
    axis.set_ylabel(f"observed conversion rate ({rows})")
    axis.set_title(f"Reliability, {result.summary['model_version']}")
    axis.legend(loc="upper left")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    encoded = base64.b64encode(path.read_bytes()).decode()
    return f"![reliability plot](data:image/png;base64,{encoded})", path


def _jsonable(value):
    """Summary dicts may hold numpy scalars; the UI needs plain JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value
