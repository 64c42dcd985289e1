"""Account scoring: layer models, their learned and calibrated combination, tiers, potential and reasons.

Each layer (fit, engagement, persona) is its own model trained on the train split of closed opportunities:
a regularised logistic regression (L1 or L2, C chosen by cross-validated log loss), or gradient boosting when
cross-validated log loss says it is clearly better. A second logistic regression combines the layer logits;
it is fitted on out-of-fold layer logits of every train row (cross-fitting), and sigmoid (Platt) or isotonic
calibration on out-of-fold combiner scores, chosen by cross-validated Brier score, makes the result a
probability; when conversion drifts over time, the calibration follows the recent outcomes. The test split (the
latest outcomes where dates exist) is only ever used for evaluation, and earlier out-of-time windows are predicted
by the whole recipe refitted on the outcomes before each (a rolling-origin back-test). A feature that separates
won from lost almost perfectly on its own is treated as leaked from the outcome and excluded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import pairwise

import numpy as np
import pandas as pd
import polars as pl
from scipy.optimize import brentq, minimize
from scipy.special import expit
from scipy.stats import rankdata
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from ml.policy import Policy, ScoringPolicy, TierPolicy

LAYERS = ("fit", "engagement", "persona")
LAYER_PREFIXES = {"fit": "fit_", "engagement": "eng_", "persona": "persona_"}
# in_sample: every closed outcome scored by a model this run did not fit (the champion, whose training rows
# may be among them, or the policy's prior weights, whose intercept is their base rate): not held out.
SPLITS = ("train", "test", "in_sample")
# Held-out predictions pooled over several fits, for a calibration error measured on more rows than the test
# split holds. Dated outcomes: a rolling-origin back-test (each window predicted by the recipe fitted on the
# outcomes before it). Undated ones: out-of-fold predictions over every closed outcome.
BACK_TEST = "back_test"
CROSS_VALIDATED = "cross_validated"
TRAIN, TEST, IN_SAMPLE = range(3)
TIERS = ("A", "B", "C")
OTHER, MISSING = "other", "missing"
# How a top factor's account value is shown.
NUMBER, FLAG, CATEGORY = range(3)

# Below this many closed outcomes three splits cannot each hold both classes: use the base rate.
MIN_CLOSED_TO_FIT = 30
# A time split needs dates on most rows, otherwise the undated rows would decide it.
MIN_DATED_SHARE = 0.8
# Close dates on this much larger a share of one outcome class than of the other: outcomes are ordered by
# creation date instead (see _outcome_dates).
ONE_SIDED_CLOSE_DATES = 0.5
# An attribute is a number when nearly all its values parse; the few that do not are typos, so missing.
MIN_NUMERIC_SHARE = 0.95
# A non-negative number this skewed on training rows (counts, revenue) enters the model as log(1 + x).
LOG_SCALE_MIN_SKEW = 2.0
# A non-negative number that is exactly zero on at least this share of training rows gets a zero flag too.
ZERO_FLAG_MIN_SHARE = 0.05
# Gradient boosting settings: shallow trees and a slow rate, because layers train on a few thousand rows.
BOOSTING_PARAMS = {"learning_rate": 0.1, "max_iter": 100, "max_leaf_nodes": 8, "min_samples_leaf": 40,
                   "l2_regularization": 1.0}
# Occlusion explanations of boosted layers run over accounts in chunks so memory stays bounded.
EXPLAIN_CHUNK = 100_000
# Folds for the out-of-fold combiner logits the final calibration map is fitted on.
CALIBRATION_FOLDS = 5
TOP_FACTORS_PER_SIDE = 3
# A contribution that rounds to 0.00 explains nothing.
MIN_SHOWN_CONTRIBUTION = 0.005
# A column whose spread on the training rows is this small relative to its level carries no signal.
CONSTANT_TOLERANCE = 1e-9
# Simulated outcome draws behind an ECE's noise floor (see ece_noise_floor).
ECE_NOISE_DRAWS = 200
# Bounds of the recent-outcomes logit shift (a factor of e^5 on the odds either way).
MAX_LOGIT_SHIFT = 5.0
# Keeps log loss finite when a model is certain.
PROBABILITY_CLIP = 1e-15
LBFGS_MAX_ITER = 1000

SCORE_COLUMNS = (
    "account_id", "fit_score", "engagement_score", "persona_score", "conversion_probability",
    "priority_score", "tier", "top_factors", "expected_deal_value", "potential", "low_confidence",
    "model_version", "scored_at",
)
METRIC_COLUMNS = ("model_version", "layer", "split", "metric", "value")
WEIGHT_COLUMNS = ("model_version", "layer", "feature", "weight")
TIER_LIFT_COLUMNS = ("model_version", "tier", "n", "won", "conversion_rate")


@dataclass
class ScoringResult:
    """Everything one scoring run publishes: the four tables and a run summary."""

    account_scores: pd.DataFrame
    metrics: pd.DataFrame
    weights: pd.DataFrame
    tier_lift: pd.DataFrame
    summary: dict
    # The fitted model in a form that scores rows it never saw (see score_new_rows).
    model: ChampionModel | None = None
    # The held-out test rows (account_id, won 0/1), so a challenger and the champion meet on the same data.
    held_out: pd.DataFrame | None = None
    # Pooled held-out predictions (won 0/1, probability, window or fold): the back-test's out-of-time rows when
    # outcomes are dated, else every closed outcome out-of-fold. The reliability plot is drawn from them.
    pooled: pd.DataFrame | None = None
    pooled_split: str | None = None


@dataclass(frozen=True)
class _Source:
    """One explainable input of a layer before encoding: a number or a category per account."""

    name: str
    label: str
    layer: str
    # Numbers: float per account, NaN when missing. Categories: codes into levels, -1 when missing.
    values: np.ndarray
    levels: np.ndarray | None = None
    is_flag: bool = False


@dataclass(frozen=True)
class _Encoding:
    """A source as standardised design columns; every statistic comes from training rows only."""

    source: _Source
    columns: tuple[str, ...]
    keep: np.ndarray
    centre: np.ndarray
    scale: np.ndarray
    fill: float = np.nan
    # Categories: raw code + 1 (0 = missing) -> grouped level, and the grouped level names.
    group_of: np.ndarray | None = None
    group_names: np.ndarray | None = None
    # Numbers: the model sees log(1 + x), the explanation still shows x.
    log_scale: bool = False

    def grouped(self, pos: np.ndarray) -> np.ndarray:
        return self.group_of[self.source.values[pos] + 1]

    def basis(self, pos: np.ndarray) -> np.ndarray:
        """Unstandardised kept columns for the given account positions."""
        if self.group_of is None:
            x = self.source.values[pos]
            missing = np.isnan(x)
            filled = np.where(missing, self.fill, x)
            columns = [np.log1p(np.maximum(filled, 0.0)) if self.log_scale else filled, missing]
            if len(self.keep) > 2:
                # Zero-inflated counts (no visit at all) differ in kind from small ones: a flag of their own.
                columns.append(~missing & (x == 0))
            full = np.column_stack(columns)
        else:
            full = self.grouped(pos)[:, None] == np.arange(len(self.group_names))
        return full[:, self.keep].astype(float)

    def design(self, pos: np.ndarray) -> np.ndarray:
        return (self.basis(pos) - self.centre) / self.scale

    def contribution(self, coef: np.ndarray) -> np.ndarray:
        """Coefficient times standardised value, summed over this source's columns, for every account."""
        per_unit = coef / self.scale
        shift = per_unit @ self.centre
        everyone = np.arange(len(self.source.values))
        if self.group_of is None:
            return self.basis(everyone) @ per_unit - shift
        # A lookup per grouped level avoids a dense one-hot matrix over all accounts.
        table = np.full(len(self.group_names), -shift)
        table[self.keep] += per_unit
        return table[self.grouped(everyone)]


@dataclass(frozen=True)
class _LayerFit:
    """A layer's model: logistic coefficients per encoding, or a boosted model over the same design columns.

    For a boosted layer `coefs` hold each column's mean absolute occlusion effect on the training rows
    (a weight to read, not to multiply) and `intercept` is unused.
    """

    encodings: tuple[_Encoding, ...]
    coefs: tuple[np.ndarray, ...]
    intercept: float
    booster: HistGradientBoostingClassifier | None = None

    def contributions(self, encodings: tuple[_Encoding, ...], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-source contributions (rows x sources) and the layer logit, for the given account positions.

        Logistic: coefficient times standardised value, which sums to the logit. Boosted: how much the
        logit drops when the source is set to its training mean (occlusion), from the same model.
        """
        if self.booster is None:
            contrib = np.column_stack([e.design(rows) @ c for e, c in zip(encodings, self.coefs)])
            return contrib, self.intercept + contrib.sum(axis=1)
        design = np.hstack([e.design(rows) for e in encodings])
        logit = self.booster.decision_function(design)
        contrib = np.empty((len(rows), len(encodings)))
        start = 0
        for k, encoding in enumerate(encodings):
            width = len(encoding.columns)
            saved = design[:, start:start + width].copy()
            # Standardised columns have training mean 0.
            design[:, start:start + width] = 0.0
            contrib[:, k] = logit - self.booster.decision_function(design)
            design[:, start:start + width] = saved
            start += width
        return contrib, logit


@dataclass(frozen=True)
class _Combiner:
    """Learned weights on the layer logits, then a calibration map of the combined logit.

    The map is Platt's slope and offset, or an isotonic step function when that calibrated clearly better;
    `slope` also scales the explanations, so for isotonic it is the Platt slope fitted on the same rows.
    """

    weights: np.ndarray
    intercept: float
    slope: float
    offset: float
    isotonic: IsotonicRegression | None = None
    # Logit shift re-fitted on the most recent outcomes when their base rate moved (see _recent_shift).
    shift: float = 0.0

    def raw(self, layer_logits: np.ndarray) -> np.ndarray:
        return layer_logits @ self.weights + self.intercept

    def logit(self, layer_logits: np.ndarray) -> np.ndarray:
        return self.slope * self.raw(layer_logits) + self.offset + self.shift

    def probability(self, layer_logits: np.ndarray) -> np.ndarray:
        if self.isotonic is None:
            return expit(self.logit(layer_logits))
        return _shifted(self.isotonic.predict(self.raw(layer_logits)), self.shift)


@dataclass(frozen=True)
class _Pooled:
    """Held-out predictions of some closed outcomes, pooled over several fits (see BACK_TEST)."""

    split: str
    rows: np.ndarray
    probability: np.ndarray
    # The back-test window (0 = the test split) or the cross-validation fold of each row.
    group: np.ndarray
    # What a group is, for the metric that counts them: "windows" or "folds".
    groups: str


@dataclass(frozen=True)
class _Split:
    method: str
    note: str
    labels: np.ndarray | None
    # What orders a time split: close dates (else creation), or creation dates alone (see _outcome_dates).
    ordered_by: str = "close date"


@dataclass(frozen=True)
class _Run:
    """What every output of one run needs, whichever path (model or base rate) produced it."""

    features: pd.DataFrame
    closed: pd.DataFrame
    deal_value: np.ndarray
    # Why confidence is low; empty when it is not.
    reasons: list[str]
    facts: dict
    policy: Policy
    model_version: str
    scored_at: datetime
    # A-tier accounts the owner reps can work; None when unknown (the policy share alone sets the cut).
    a_capacity: float | None = None
    # Extra summary entries and metric rows (layer, split, metric, value) that paths add as they decide.
    notes: dict = field(default_factory=dict)
    extra_metrics: list = field(default_factory=list)

    @property
    def pos(self) -> np.ndarray:
        """Each closed outcome's row in the sources: its account's, or its own point-in-time training row."""
        return self.closed["pos"].to_numpy()

    @property
    def account_pos(self) -> np.ndarray:
        return self.closed["account"].to_numpy()

    @property
    def y(self) -> np.ndarray:
        return self.closed["y"].to_numpy()


# ---------------------------------------------------------------- public pure helpers


def equal_mass_bins(p: np.ndarray, bins: int) -> np.ndarray:
    """Bin of each prediction when rows sorted by p are cut into `bins` groups of (nearly) equal size.

    Equal-mass bins each hold n / bins rows, so no bin's rate rests on a handful of rows the way the sparse
    top bins of equal-width binning do; ties in p are cut by row order, deterministically.
    """
    p = np.asarray(p, dtype=float)
    bin_of = np.empty(len(p), dtype=np.int64)
    bin_of[np.argsort(p, kind="stable")] = np.arange(len(p)) * bins // max(len(p), 1)
    return bin_of


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int) -> float:
    """Share-weighted gap between mean prediction and observed rate over equal-mass probability bins."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    if len(y) == 0:
        return float("nan")
    # Per bin, |sum(p) - sum(y)| / N equals its share times |mean p - mean y|.
    gap = np.bincount(equal_mass_bins(p, bins), weights=p - y, minlength=bins)
    return float(np.abs(gap).sum() / len(y))


def reliability_table(y: np.ndarray, p: np.ndarray, bins: int) -> pd.DataFrame:
    """Rows, mean predicted probability and observed rate per equal-mass bin (the reliability curve)."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    bin_of = equal_mass_bins(p, bins)
    count = np.bincount(bin_of, minlength=bins)
    used = count > 0
    return pd.DataFrame({
        "rows": count[used],
        "mean_probability": np.bincount(bin_of, weights=p, minlength=bins)[used] / count[used],
        "observed_rate": np.bincount(bin_of, weights=y, minlength=bins)[used] / count[used],
    })


def percentile_rank(values: np.ndarray) -> np.ndarray:
    """Mid-rank percentile (0..100): ties share one value, and a constant column sits at 50."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return values
    return (rankdata(values, method="average") - 0.5) / len(values) * 100.0


def assign_tiers(priority: np.ndarray, tiers: TierPolicy) -> np.ndarray:
    """Tier A, B or C from the priority score and the policy cut-offs."""
    priority = np.asarray(priority, dtype=float)
    return np.where(
        priority >= tiers.a_min_priority, "A", np.where(priority >= tiers.b_min_priority, "B", "C")
    )


def ece_noise_floor(p: np.ndarray, bins: int, draws: int, seed: int) -> float:
    """Mean ECE of perfectly calibrated predictions p: outcomes drawn as Bernoulli(p), binned as ECE bins them.

    ECE over n rows is biased upward by sampling noise alone (about 0.03 for 700 rows in 10 bins at a 20%
    base rate), so a held-out ECE is read against this floor: near it, the rows cannot show miscalibration.
    """
    p = np.asarray(p, dtype=float)
    if len(p) == 0:
        return float("nan")
    bin_of = equal_mass_bins(p, bins)
    rng = np.random.default_rng(seed)
    # One vectorised pass over the rows per draw keeps memory at one column however many rows there are.
    gaps = [np.abs(np.bincount(bin_of, weights=p - (rng.random(len(p)) < p), minlength=bins)).sum()
            for _ in range(draws)]
    return float(np.mean(gaps) / len(p))


def binary_metrics(y: np.ndarray, p: np.ndarray, bins: int) -> dict[str, float]:
    """n, base rate, Brier, log loss, ECE and (when both classes are present) AUC of predictions p."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    result = {"n": float(len(y))}
    if len(y) == 0:
        return result
    clipped = np.clip(p, PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)
    result["base_rate"] = float(y.mean())
    result["brier"] = float(np.mean((p - y) ** 2))
    result["log_loss"] = float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)))
    result["ece"] = expected_calibration_error(y, p, bins)
    if 0 < y.sum() < len(y):
        result["auc"] = float(roc_auc_score(y, p))
    return result


# ---------------------------------------------------------------- entry point


def score_accounts(
    features: pd.DataFrame,
    outcomes: pd.DataFrame,
    technologies: pd.DataFrame,
    attributes: pd.DataFrame,
    signals: pd.DataFrame,
    policy: Policy,
    model_version: str,
    scored_at: datetime,
    champion: ChampionModel | None = None,
    a_capacity: float | None = None,
    training_features: pd.DataFrame | None = None,
    training_signals: pd.DataFrame | None = None,
) -> ScoringResult:
    """Score every account in `features` against the closed (won/lost) opportunities in `outcomes`.

    `features` is account_features (account_id, identity columns, fit_* / eng_* / persona_* features);
    technologies, attributes and signals are its long tables and may have no rows. Every account gets a
    row in account_scores, in the order of `features`. `training_features` (opportunity_id and eng_* /
    persona_* columns, as the training_features mart computes them before each opportunity closed) and
    `training_signals` (opportunity_id, layer, signal, value) describe each closed opportunity as it
    stood before its cutoff, so no event after a deal closed feeds its training row; fit columns, technologies
    and attributes are account fields with only a current value and come from the account. Without them
    (None) every training row uses its account's as-of features. The `low_confidence` metric is one row (layer
    combined, split train) with value 1.0 or 0.0. Below the policy's minimum outcomes no model is trained:
    `champion` (the promoted model, when there is one) or else the policy's prior weights score the
    accounts. `a_capacity` (A accounts the owner reps can work) caps the A tier at a share that a plan
    balanced within the policy's A-count tolerance keeps inside every rep's capacity. Raises ValueError when
    account_id is missing or duplicated, a feature column holds dates, or a signal has an unknown layer.
    """
    scoring = policy.scoring
    index = _account_index(features)
    closed, unmatched = _closed_outcomes(outcomes, index)
    facts = _facts(closed, unmatched)
    run = _Run(
        features, closed, _expected_deal_value(features, outcomes, index, scoring.deal_value_cap_quantile),
        _low_confidence_reasons(facts, scoring), facts, policy, model_version, scored_at, a_capacity,
    )
    if run.reasons and len(closed):
        if champion is not None and champion.fits:
            return _champion_result(run, champion, technologies, attributes, signals)
        return _prior_result(run, _feature_sources(features))
    split = _split(closed, scoring)
    if split.labels is None:
        return _base_rate_result(run, split, {})
    train = split.labels == TRAIN
    rows, training_frame = _training_rows(run, training_features)
    train_pos, y_train = run.pos[train], run.y[train]
    train_weight = np.bincount(run.account_pos[train], minlength=len(index))
    sources = (
        _feature_sources(pd.concat([features, training_frame], ignore_index=True))
        + [_on_rows(s, rows) for s in _technology_sources(technologies, index, train_weight, scoring)]
        + [_on_rows(s, rows) for s in _attribute_sources(attributes, index, scoring.missing_value_tokens)]
        + _row_signal_sources(signals, training_signals, index, run)
    )
    # Hundreds of small fits: BLAS and OpenMP worker threads cost more to wake than they save here, and on a
    # busy small machine they spin against each other (several times slower than one thread).
    with threadpool_limits(1):
        fits, switched_off, comparisons, leaked = _fit_layers(sources, train_pos, y_train, scoring)
        run.notes["excluded_as_leaking"] = leaked
        run.extra_metrics.extend(
            (layer, "train", metric, value) for layer, values in comparisons.items() for metric, value in values.items()
        )
        if not fits:
            return _base_rate_result(run, _Split("none", "no layer has a usable feature", None), switched_off)
        return _model_result(run, split, sources, fits, switched_off, comparisons)


def score_with_model(
    features: pd.DataFrame,
    outcomes: pd.DataFrame,
    technologies: pd.DataFrame,
    attributes: pd.DataFrame,
    signals: pd.DataFrame,
    policy: Policy,
    model: ChampionModel,
    scored_at: datetime,
    why: str,
    a_capacity: float | None = None,
) -> ScoringResult:
    """Score every account with an already trained model (the champion), evaluated on every closed outcome.

    Tables and summary have the shape score_accounts gives; `why` says in the summary why no model was
    trained, and the model_version is the kept model's.
    """
    index = _account_index(features)
    closed, unmatched = _closed_outcomes(outcomes, index)
    facts = _facts(closed, unmatched)
    run = _Run(
        features, closed, _expected_deal_value(features, outcomes, index, policy.scoring.deal_value_cap_quantile),
        _low_confidence_reasons(facts, policy.scoring), facts, policy, model.model_version, scored_at, a_capacity,
    )
    result = _champion_result(run, model, technologies, attributes, signals)
    result.summary["kept_model"] = f"champion {model.model_version} ({why})"
    return result


def _model_result(
    run: _Run, split: _Split, sources: list[_Source], fits: dict[str, _LayerFit], switched_off: dict[str, str],
    choices: dict[str, dict[str, float]],
) -> ScoringResult:
    """Combine and calibrate the fitted layers, score every account, evaluate on every split.

    The combiner and the calibration maps learn from out-of-fold layer logits of every training row (each from
    the layer refitted without that row's fold), so they see as many rows as the layers did and none that the
    scoring layer model had learned. The layer models ran over the accounts' rows and the training rows after
    them, so one pass gives the accounts' scores and the closed outcomes' held-out predictions.
    """
    pos, y, labels = run.pos, run.y, split.labels
    train = labels == TRAIN
    n = len(run.features)
    contrib, blocks, logits = _layer_logits(fits, n + len(run.closed))
    held_logits = _out_of_fold_layer_logits(fits, choices, pos[train], y[train], run.policy.scoring)
    layer_probability = _calibrate_layers(logits, held_logits, y[train])
    combiner, facts = _fit_combiner(held_logits, y[train], run.policy.scoring, _ages(run, split, train))
    run.extra_metrics.extend(("combined", "train", metric, value) for metric, value in facts.items())
    run.notes["calibration"] = "isotonic" if combiner.isotonic is not None else "sigmoid"
    if combiner.shift:
        run.notes["recalibration"] = (
            f"shifted {combiner.shift:+.2f} on the logit scale toward the recent base rate (outcomes weighted by a "
            f"{facts['recent_shift_half_life_days']:g}-day half-life, chosen by how well it predicted the latest "
            "training outcomes)")
    probability = combiner.probability(logits)
    per_layer = dict(zip(fits, layer_probability.T))
    run.notes["back_test_cutoff"] = _cutoff(run, labels)
    if split.method == "time":
        pooled = _back_test(run, labels, sources, probability[pos[labels == TEST]])
    elif (labels == TEST).sum() < run.policy.scoring.pooled_enough_rows:
        pooled = _cross_validated(run, sources)
    else:
        pooled = None
    return _result(run, split, labels, fits, switched_off, combiner, probability, per_layer,
                   _explain(contrib[:n], blocks, fits, combiner), pooled)


def _result(
    run: _Run, split: _Split, labels: np.ndarray, fits: dict[str, _LayerFit], switched_off: dict[str, str],
    combiner: _Combiner | None, probability: np.ndarray, per_layer: dict[str, np.ndarray], factors: pl.Series,
    pooled: _Pooled | None = None,
) -> ScoringResult:
    """The four tables, the summary and the reusable model from one path's probabilities.

    `probability` and `per_layer` cover the accounts' rows first, then any training rows of closed outcomes;
    `pooled` holds the back-test or out-of-fold predictions, when the run trained a model.
    """
    n = len(run.features)
    scores = _score_frame(run, {layer: 100.0 * p[:n] for layer, p in per_layer.items()}, probability[:n], factors)
    metrics = _metric_frame(run, per_layer | {"combined": probability}, labels, pooled)
    test = labels == TEST
    evaluated = labels == _evaluation_split(labels)
    tiers = _row_tiers(scores["tier"].to_numpy(), probability)
    return ScoringResult(
        account_scores=scores,
        metrics=metrics,
        weights=_weight_frame(run, fits, combiner),
        tier_lift=_tier_lift(run, tiers[run.pos[evaluated]], run.y[evaluated]),
        summary=_summary(run, split, labels, switched_off, fits, combiner, metrics),
        model=_champion(run, fits, combiner, probability[:n]),
        held_out=pd.DataFrame({"account_id": run.features["account_id"].to_numpy()[run.account_pos[test]],
                               "won": run.y[test]}),
        pooled=None if pooled is None else pd.DataFrame({
            "won": run.y[pooled.rows], "probability": pooled.probability, pooled.groups.removesuffix("s"): pooled.group,
        }),
        pooled_split=None if pooled is None else pooled.split,
    )


def _row_tiers(account_tiers: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """Tiers of the accounts, then of each training row by where its probability falls among the accounts'.

    A training row is A when its probability reaches the lowest A account's, else B when it reaches the
    lowest B account's, so the back-test judges the cut-offs the accounts were actually tiered with.
    """
    n = len(account_tiers)
    extra = probability[n:]
    tiers = np.full(len(extra), "C", dtype=account_tiers.dtype)
    for tier in ("B", "A"):
        members = probability[:n][account_tiers == tier]
        if len(members):
            tiers[extra >= members.min()] = tier
    return np.concatenate([account_tiers, tiers])


def _cutoff(run: _Run, labels: np.ndarray) -> str | None:
    """The back-test cut-off: the last close date the models learned from (time split only)."""
    dates = run.closed["date"][labels == TRAIN]
    return None if dates.isna().all() else str(dates.max().date())


def _champion_result(
    run: _Run, champion: ChampionModel, technologies: pd.DataFrame, attributes: pd.DataFrame, signals: pd.DataFrame
) -> ScoringResult:
    """Too few outcomes to train: the promoted champion scores today's features, evaluated on every closed row."""
    # The scores are the champion's, so they carry its version.
    run = replace(run, model_version=champion.model_version)
    index = pd.Index(run.features["account_id"])
    signal_now = {source.name: source for source in
                  _signal_sources(signals, index, run.policy.scoring.missing_value_tokens)}

    def today(encoding: _Encoding) -> _Encoding:
        now = signal_now.get(encoding.source.name)
        if now is None:
            return _encoding_for_new_rows(encoding, run.features, technologies, attributes, index, champion)
        if encoding.source.levels is None:
            number = now.values if now.levels is None else np.full(len(index), np.nan)
            return replace(encoding, source=replace(encoding.source, values=number))
        text = pd.Series(pd.NA, index=range(len(index)), dtype="string")
        if now.levels is not None:
            coded = now.values >= 0
            text[coded] = now.levels[now.values[coded]].astype(str)
        return _with_text(encoding, text)

    fits = {layer: replace(fit, encodings=tuple(today(e) for e in fit.encodings)) for layer, fit in champion.fits.items()}
    run.notes["kept_model"] = f"champion {champion.model_version} (no model trained: too few outcomes)"
    return _fixed_model_result(run, fits, champion.combiner, "champion")


def _prior_result(run: _Run, sources: list[_Source]) -> ScoringResult:
    """Too few outcomes and no champion: the policy's prior weights per standard deviation of each feature."""
    priors = run.policy.scoring.prior_weights
    everyone = np.arange(len(run.features))
    fits: dict[str, _LayerFit] = {}
    for layer in LAYERS:
        own = [s for s in sources if s.layer == layer and s.name in priors and s.levels is None]
        encodings = [e for e in (_encode(s, everyone, run.policy.scoring) for s in own) if e is not None]
        if encodings:
            coefs = tuple(np.where(np.array(e.columns) == e.source.name, priors[e.source.name], 0.0) for e in encodings)
            fits[layer] = _LayerFit(tuple(encodings), coefs, 0.0)
    base_logit = float(np.log(run.y.mean() / (1 - run.y.mean()))) if 0 < run.y.mean() < 1 else 0.0
    combiner = _Combiner(np.ones(len(fits)), base_logit, 1.0, 0.0)
    run.notes["kept_model"] = (
        f"policy prior weights on {sum(len(f.encodings) for f in fits.values())} features (no model trained: "
        "too few outcomes, and no champion to keep)"
    )
    return _fixed_model_result(run, fits, combiner, "prior weights")


def _fixed_model_result(run: _Run, fits: dict[str, _LayerFit], combiner: _Combiner, method: str) -> ScoringResult:
    """Scores from a model this run did not train; every closed outcome is evaluation data for it."""
    if not fits:
        return _base_rate_result(run, _Split("none", f"{method}: no usable feature", None), {})
    contrib, blocks, logits = _layer_logits(fits, len(run.features))
    probability = combiner.probability(logits)
    per_layer = {layer: expit(logits[:, j]) for j, layer in enumerate(fits)}
    labels = np.full(len(run.y), IN_SAMPLE, dtype=np.int8)
    split = _Split(method, f"no model trained this run: every closed outcome is scored by the {method}, in-sample "
                           "(not held out)", labels)
    run.extra_metrics.append(("combined", SPLITS[IN_SAMPLE], "prior_weights", float(method == "prior weights")))
    off = {layer: f"not in the {method}" for layer in LAYERS if layer not in fits}
    return _result(run, split, labels, fits, off, combiner, probability, per_layer,
                   _explain(contrib, blocks, fits, combiner))


def _base_rate_result(run: _Run, split: _Split, switched_off: dict[str, str]) -> ScoringResult:
    """No model can be fitted: every account gets the base rate (0.5 without outcomes), low confidence."""
    run = replace(run, reasons=run.reasons or [split.note])
    # The base rate is one number per account: every closed outcome is read at its account's row.
    run.closed["pos"] = run.closed["account"]
    n = len(run.features)
    probability = np.full(n, run.y.mean() if len(run.y) else 0.5)
    factors = pl.Series(np.full(n, f"no model: {split.note}"), dtype=pl.String)
    scores = _score_frame(run, {}, probability, factors)
    # Every closed row fed the base rate, so they all count as training rows.
    labels = np.full(len(run.y), TRAIN, dtype=np.int8)
    metrics = _metric_frame(run, {"combined": probability}, labels, None)
    off = {layer: switched_off.get(layer, f"no model: {split.note}") for layer in LAYERS}
    return ScoringResult(
        account_scores=scores,
        metrics=metrics,
        weights=_weight_frame(run, {}, None),
        tier_lift=_tier_lift(run, scores["tier"].to_numpy()[run.pos], run.y),
        summary=_summary(run, split, labels, off, {}, None, metrics),
        model=_champion(run, {}, None, probability),
    )


# ---------------------------------------------------------------- outcomes and splits


def _account_index(features: pd.DataFrame) -> pd.Index:
    if "account_id" not in features.columns:
        raise ValueError("account_features has no account_id column; it is the key every score joins on")
    index = pd.Index(features["account_id"])
    if not index.is_unique:
        duplicated = index[index.duplicated()].unique()[:5].tolist()
        raise ValueError(f"account_features has duplicate account_id values {duplicated}; keep one row each")
    return index


def _utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, errors="coerce", utc=True)


def _outcome(outcomes: pd.DataFrame) -> pd.Series:
    return outcomes["outcome"].astype("string").str.strip().str.lower()


def _closed_outcomes(outcomes: pd.DataFrame, index: pd.Index) -> tuple[pd.DataFrame, int]:
    """Won (1) and lost (0) opportunities of known accounts, with their date and account position."""
    outcome = _outcome(outcomes)
    is_closed = outcome.isin(["won", "lost"]).to_numpy(dtype=bool, na_value=False)
    pos = index.get_indexer(outcomes["account_id"])
    keep = is_closed & (pos >= 0)
    won = (outcome[keep] == "won").to_numpy(dtype=int)
    date, dating = _outcome_dates(
        _utc(outcomes["closed_at"])[keep].reset_index(drop=True),
        _utc(outcomes["created_at"])[keep].reset_index(drop=True),
        won,
    )
    closed = pd.DataFrame({
        "pos": pos[keep],
        "y": won,
        "date": date,
        "account": pos[keep],
        "opportunity_id": outcomes["opportunity_id"][keep].astype(str).to_numpy(),
    })
    closed.attrs["dating"] = dating
    return closed, int((is_closed & (pos < 0)).sum())


def _outcome_dates(closed_at: pd.Series, created_at: pd.Series, won: np.ndarray) -> tuple[pd.Series, str | None]:
    """When each closed outcome happened: its close date, else its creation date; and a note when that rule
    was set aside.

    Some exports date only one class (won deals carry a close date, lost leads none): the close-else-created
    dates then put every late outcome in that class, and a time split would test on a window of wins alone.
    When the two classes' shares with a close date differ by ONE_SIDED_CLOSE_DATES or more, every outcome is
    dated by its creation date instead (the cohort it came in with), if most have one.
    """
    has_close = closed_at.notna().to_numpy()
    shares = [float(has_close[won == cls].mean()) if (won == cls).any() else 0.0 for cls in (1, 0)]
    if abs(shares[0] - shares[1]) >= ONE_SIDED_CLOSE_DATES and created_at.notna().mean() >= MIN_DATED_SHARE:
        return created_at, (
            f"close dates on {shares[0]:.0%} of won and {shares[1]:.0%} of lost outcomes, so outcomes are ordered "
            "by creation date (close dates would put only one class in the latest window)"
        )
    return closed_at.fillna(created_at), None


def _facts(closed: pd.DataFrame, unmatched: int) -> dict:
    return {
        "closed_outcomes": len(closed),
        "won_outcomes": int(closed["y"].sum()),
        "accounts_with_outcomes": int(closed["account"].nunique()),
        "outcomes_without_account": unmatched,
    }


def _low_confidence_reasons(facts: dict, scoring: ScoringPolicy) -> list[str]:
    minimums = (
        ("closed_outcomes", scoring.min_closed_outcomes),
        ("won_outcomes", scoring.min_won_outcomes),
        ("accounts_with_outcomes", scoring.min_distinct_accounts),
    )
    return [
        f"{facts[key]} {key.replace('_', ' ')} (policy minimum {minimum})"
        for key, minimum in minimums
        if facts[key] < minimum
    ]


def _split(closed: pd.DataFrame, scoring: ScoringPolicy) -> _Split:
    """Train / calibration / test labels: by time when dates allow, else stratified at random."""
    y = closed["y"].to_numpy()
    if len(y) == 0:
        return _Split("none", "no closed outcomes", None)
    if y.min() == y.max():
        return _Split("none", f"all {len(y)} closed outcomes are {'won' if y[0] else 'lost'}", None)
    if len(y) < MIN_CLOSED_TO_FIT:
        return _Split("none", f"{len(y)} closed outcomes, fewer than the {MIN_CLOSED_TO_FIT} needed", None)
    dated_share = float(closed["date"].notna().mean())
    if dated_share >= MIN_DATED_SHARE:
        labels = _time_split(closed, scoring)
        if _has_both_classes(labels, y):
            note = "latest closed opportunities held out for test"
            dating = closed.attrs.get("dating")
            if dating:
                return _Split("time", f"{note}; {dating}", labels, "creation date")
            return _Split("time", note, labels)
        note = "the time split left train with one outcome class; split at random"
    else:
        note = f"only {dated_share:.0%} of closed opportunities have a date; split at random"
    labels = _random_split(y, scoring)
    if _has_both_classes(labels, y):
        return _Split("random", note, labels)
    return _Split("none", "too few won or lost outcomes to give every split both classes", None)


def _time_order(closed: pd.DataFrame) -> np.ndarray:
    """Closed outcomes from the earliest to the latest date, ties broken by opportunity_id."""
    # Undated rows sort first (NaT is the smallest int64), so they can only ever land in train.
    moment = closed["date"].dt.tz_convert(None).to_numpy().astype("datetime64[ns]").view(np.int64)
    tie_break = pd.factorize(closed["opportunity_id"], sort=True)[0]
    return np.lexsort((tie_break, moment))


def _time_split(closed: pd.DataFrame, scoring: ScoringPolicy) -> np.ndarray:
    order = _time_order(closed)
    n = len(order)
    labels = np.full(n, TRAIN, dtype=np.int8)
    labels[order[n - _share(n, scoring.test_share):]] = TEST
    return labels


def _random_split(y: np.ndarray, scoring: ScoringPolicy) -> np.ndarray:
    rng = np.random.default_rng(scoring.random_seed)
    labels = np.full(len(y), TRAIN, dtype=np.int8)
    for cls in (0, 1):
        rows = rng.permutation(np.flatnonzero(y == cls))
        labels[rows[:_share(len(rows), scoring.test_share)]] = TEST
    return labels


def _share(n: int, share: float) -> int:
    return max(1, round(n * share))


def _has_both_classes(labels: np.ndarray, y: np.ndarray) -> bool:
    """Train holds at least two rows of each class, so its folds can be stratified."""
    won = y[labels == TRAIN].sum()
    return min(won, (labels == TRAIN).sum() - won) >= 2


# ---------------------------------------------------------------- sources: one explainable input each


def _words(name: str) -> str:
    return str(name).replace("_", " ").strip()


def _layer_of_column(column: str) -> str | None:
    return next((layer for layer, prefix in LAYER_PREFIXES.items() if column.startswith(prefix)), None)


def _feature_sources(features: pd.DataFrame) -> list[_Source]:
    sources = []
    for column in features.columns:
        layer = _layer_of_column(str(column))
        if layer is not None:
            label = _words(str(column).removeprefix(LAYER_PREFIXES[layer]))
            sources.append(_column_source(str(column), label, layer, features[column]))
    return sources


def _column_source(name: str, label: str, layer: str, values: pd.Series) -> _Source:
    if pd.api.types.is_datetime64_any_dtype(values) or isinstance(values.dtype, pd.PeriodDtype):
        raise ValueError(
            f"account_features column {name} holds dates; turn it into a number (e.g. days since) in dbt"
        )
    if pd.api.types.is_numeric_dtype(values):
        number = _finite(values.to_numpy(dtype=float, na_value=np.nan))
        return _Source(name, label, layer, number, is_flag=pd.api.types.is_bool_dtype(values))
    return _category_source(name, label, layer, values, np.arange(len(values)), len(values))


def _finite(values: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(values), values, np.nan)


def _text(values: pd.Series) -> pd.Series:
    """Stripped strings; empty ones become missing."""
    text = values.astype("string").str.strip()
    return text.mask(text == "")


def _category_source(
    name: str, label: str, layer: str, values: pd.Series, pos: np.ndarray, n: int
) -> _Source:
    codes, levels = pd.factorize(_text(values))
    full = np.full(n, -1, dtype=np.int64)
    full[pos] = codes
    return _Source(name, label, layer, full, levels=np.asarray(levels, dtype=object))


def _technology_sources(
    technologies: pd.DataFrame, index: pd.Index, train_weight: np.ndarray, scoring: ScoringPolicy
) -> list[_Source]:
    """A 0/1 flag per technology common on training rows; the rare ones share one 'other' flag."""
    if technologies.empty:
        return []
    pos = index.get_indexer(technologies["account_id"])
    code, names = pd.factorize(_text(technologies["technology"]))
    known = (pos >= 0) & (code >= 0)
    # One (account, technology) pair per use, however often the export repeats it.
    pos, code = np.divmod(_distinct(pos[known] * len(names) + code[known]), len(names))
    rows = np.bincount(code, weights=train_weight[pos], minlength=len(names))
    order = np.lexsort((np.asarray(names, dtype=str), -rows))
    common = [c for c in order if rows[c] >= scoring.min_category_rows]
    common = common[: max(scoring.max_categories_per_feature - 1, 0)]
    n = len(index)
    sources = [_flag_source(f"technology:{names[c]}", f"uses {names[c]}", pos[code == c], n) for c in common]
    rare = ~np.isin(code, common)
    if rare.any():
        sources.append(_flag_source("technology:other", "uses other technologies", pos[rare], n))
    return sources


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct integers; sorting once is many times faster here than np.unique's hash path."""
    ordered = np.sort(values)
    return ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])]


def _flag_source(name: str, label: str, pos: np.ndarray, n: int) -> _Source:
    values = np.zeros(n)
    values[pos] = 1.0
    return _Source(name, label, "fit", values, is_flag=True)


def _placeholders_missing(text: pd.Series, missing_tokens: Sequence[str]) -> pd.Series:
    """`text` with every placeholder of `missing_tokens` ("Select", "N/A" ..., any case) missing."""
    return text.mask(text.str.lower().isin([token.lower() for token in missing_tokens]))


def _attribute_sources(attributes: pd.DataFrame, index: pd.Index, missing_tokens: list[str]) -> list[_Source]:
    """Extra account columns as fit inputs: numbers when nearly all filled-in values parse, else categories.

    A placeholder from `missing_tokens` ("Select", "N/A" ...) is a value nobody filled in: missing, so it
    neither blocks a numeric column nor becomes a level of its own beside the empty values.
    """
    if attributes.empty:
        return []
    text = _placeholders_missing(_text(attributes["value"]), missing_tokens)
    frame = pd.DataFrame({
        "pos": index.get_indexer(attributes["account_id"]),
        "attribute": attributes["attribute"].astype(str).to_numpy(),
        "value": text.array,
    })
    frame = frame[(frame["pos"] >= 0) & frame["value"].notna()]
    return [
        _attribute_source(str(name), group["pos"].to_numpy(), group["value"], len(index))
        for name, group in frame.groupby("attribute", sort=True)
    ]


def _attribute_source(name: str, pos: np.ndarray, text: pd.Series, n: int) -> _Source:
    number = _finite(pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, na_value=np.nan))
    if np.mean(~np.isnan(number)) >= MIN_NUMERIC_SHARE:
        values = np.full(n, np.nan)
        values[pos] = number
        return _Source(f"attribute:{name}", _words(name), "fit", values)
    return _category_source(f"attribute:{name}", _words(name), "fit", text, pos, n)


def _signal_sources(signals: pd.DataFrame, index: pd.Index, missing_tokens: Sequence[str] = ()) -> list[_Source]:
    """One input per (layer, signal): a number, or a category when the values are text; accounts without
    the signal are missing."""
    frame = _signal_frame(signals, index.get_indexer(signals["account_id"]), "account_signal_features")
    return _signal_sources_at(frame, len(index), missing_tokens)


def _row_signal_sources(
    signals: pd.DataFrame, training_signals: pd.DataFrame | None, index: pd.Index, run: _Run
) -> list[_Source]:
    """Signals of the accounts, then of each closed outcome's training row (as of its cutoff when given)."""
    n = len(index)
    tokens = run.policy.scoring.missing_value_tokens
    if training_signals is None:
        rows = np.concatenate([np.arange(n), run.account_pos])
        return [_on_rows(source, rows) for source in _signal_sources(signals, index, tokens)]
    row_of = pd.Index(run.closed["opportunity_id"]).get_indexer(training_signals["opportunity_id"].astype(str))
    frame = pd.concat([
        _signal_frame(signals, index.get_indexer(signals["account_id"]), "account_signal_features"),
        _signal_frame(training_signals, np.where(row_of >= 0, n + row_of, -1), "training_signal_features"),
    ], ignore_index=True)
    return _signal_sources_at(frame, n + len(run.closed), tokens)


def _signal_frame(signals: pd.DataFrame, pos: np.ndarray, table: str) -> pd.DataFrame:
    """Signal rows with their row position (-1 for unknown accounts), layer checked, the value as a number
    and, for text values (`value_text`), as text."""
    layer = signals["layer"].astype("string").str.strip().str.lower().fillna("<null>")
    unknown = sorted(set(layer.unique()) - set(LAYERS))
    if unknown:
        raise ValueError(f"{table} has layer values {unknown}; use one of {list(LAYERS)} for every signal")
    text = _text(signals["value_text"]) if "value_text" in signals else pd.Series(pd.NA, index=signals.index,
                                                                                  dtype="string")
    return pd.DataFrame({
        "pos": pos,
        "layer": layer.to_numpy(dtype=object),
        "signal": signals["signal"].astype(str).to_numpy(),
        "value": _finite(pd.to_numeric(signals["value"], errors="coerce").to_numpy(float, na_value=np.nan)),
        "text": text.array,
    })


def _signal_sources_at(frame: pd.DataFrame, n: int, missing_tokens: Sequence[str] = ()) -> list[_Source]:
    """A numeric source per signal whose filled-in values are (nearly) all numbers, else a categorical one
    whose levels are the texts (and any odd number written out); a missing-value token is missing."""
    frame = frame[frame["pos"] >= 0]
    sources = []
    for (layer_name, signal), group in frame.groupby(["layer", "signal"], sort=True):
        name, label, layer = f"signal:{signal}", _words(signal), str(layer_name)
        pos = group["pos"].to_numpy()
        text = _placeholders_missing(group["text"].astype("string"), missing_tokens)
        number = group["value"].to_numpy()
        numeric = ~np.isnan(number)
        filled = numeric | text.notna().to_numpy()
        if not filled.any() or numeric[filled].mean() >= MIN_NUMERIC_SHARE:
            values = np.full(n, np.nan)
            values[pos] = number
            sources.append(_Source(name, label, layer, values))
        else:
            labels = text.fillna(group["value"].astype("string"))
            sources.append(_category_source(name, label, layer, labels, pos, n))
    return sources


def _on_rows(source: _Source, rows: np.ndarray) -> _Source:
    """An account-level source on the row space: accounts first, then each training row's account."""
    return replace(source, values=source.values[rows])


def _training_rows(run: _Run, training_features: pd.DataFrame | None) -> tuple[np.ndarray, pd.DataFrame]:
    """Give every closed outcome its own row after the accounts' rows, with its point-in-time features.

    Returns the row -> account map and the training rows' feature columns: the account's, with every
    eng_* / persona_* column replaced by the opportunity's own value where training_features has it.
    """
    features, closed = run.features, run.closed
    n = len(features)
    columns = [c for c in features.columns if _layer_of_column(str(c)) is not None]
    frame = features[columns].iloc[run.account_pos].reset_index(drop=True)
    closed["pos"] = n + np.arange(len(closed))
    rows = np.concatenate([np.arange(n), run.account_pos])
    if training_features is None:
        run.notes["training_rows"] = f"all {len(closed)} from their account's as-of features (no point-in-time rows given)"
        return rows, frame
    timed = [c for c in columns if _layer_of_column(str(c)) in ("engagement", "persona")]
    absent = sorted(set(timed) - set(training_features.columns))
    if absent:
        raise ValueError(
            f"training_features lacks {absent}: every eng_* and persona_* column of account_features needs its "
            "point-in-time value there (dbt_project/models/marts/training_features.sql), or training rows would "
            "see events after their opportunity closed"
        )
    at = pd.Index(training_features["opportunity_id"].astype(str)).get_indexer(closed["opportunity_id"])
    has = at >= 0
    for column in timed:
        own = training_features[column].iloc[np.where(has, at, 0)].reset_index(drop=True)
        if pd.api.types.is_numeric_dtype(features[column]):
            merged = np.where(has, pd.to_numeric(own, errors="coerce").to_numpy(float, na_value=np.nan),
                              frame[column].to_numpy(float, na_value=np.nan))
            frame[column] = merged > 0.5 if pd.api.types.is_bool_dtype(features[column]) else merged
        else:
            frame[column] = own.where(has, frame[column])
    timely = training_features["is_point_in_time"].to_numpy(dtype=bool)[at[has]].sum() if "is_point_in_time" in \
        training_features.columns else int(has.sum())
    run.notes["training_rows"] = (
        f"{int(timely)} of {len(closed)} closed opportunities described as of their cutoff (events before the "
        f"close, else the creation time); {len(closed) - int(timely)} undated ones by their account's as-of features"
    )
    return rows, frame


# ---------------------------------------------------------------- encoding (fitted on training rows)


def _encode(source: _Source, train_pos: np.ndarray, scoring: ScoringPolicy) -> _Encoding | None:
    """Design columns for a source, or None when it is constant or empty on the training rows."""
    if source.levels is None:
        x = source.values[train_pos]
        if np.isnan(x).all():
            return None
        seen = x[~np.isnan(x)]
        skewed = seen.min() >= 0 and seen.std() > 0 and _skew(seen) > LOG_SCALE_MIN_SKEW
        # A 0/1 column's zero flag would only repeat the column; counts with many zeros get one.
        zeros = seen.min() >= 0 and np.mean(seen == 0) >= ZERO_FLAG_MIN_SHARE and len(np.unique(seen[seen != 0])) > 1
        columns = (source.name, f"{source.name}:missing") + ((f"{source.name}:zero",) if zeros else ())
        width = len(columns)
        draft = _Encoding(source, columns, np.ones(width, bool), np.zeros(width), np.ones(width),
                          float(np.median(seen)), log_scale=bool(skewed))
    else:
        group_of, names = _group_levels(source, train_pos, scoring)
        columns = tuple(f"{source.name}={name}" for name in names)
        size = len(names)
        draft = _Encoding(source, columns, np.ones(size, bool), np.zeros(size), np.ones(size),
                          group_of=group_of, group_names=names)
    basis = draft.basis(train_pos)
    centre, scale = basis.mean(axis=0), basis.std(axis=0)
    keep = scale > CONSTANT_TOLERANCE * np.maximum(1.0, np.abs(centre))
    if not keep.any():
        return None
    if source.levels is not None:
        # Level indicators stay 0/1: the penalty then shrinks each level's own effect alike, so a rare level
        # (a state with forty rows) is pulled toward the average harder than a common one, as a random effect
        # would be; standardising would divide its indicator by a small spread and shrink it least.
        scale = np.where(keep, 1.0, scale)
    return replace(draft, columns=tuple(np.asarray(columns)[keep]), keep=keep, centre=centre[keep],
                   scale=scale[keep])


def _group_levels(
    source: _Source, train_pos: np.ndarray, scoring: ScoringPolicy
) -> tuple[np.ndarray, np.ndarray]:
    """Keep levels frequent on training rows (at most the policy maximum); the rest become 'other'."""
    levels = source.levels
    counts = np.bincount(source.values[train_pos] + 1, minlength=len(levels) + 1)[1:]
    lowered = np.array([str(level).lower() for level in levels], dtype=object)
    reserved = np.isin(lowered, [OTHER, MISSING])
    order = np.lexsort((lowered, -counts))
    frequent = [i for i in order if counts[i] >= scoring.min_category_rows and not reserved[i]]
    frequent = frequent[: max(scoring.max_categories_per_feature - 2, 0)]
    names = np.array([str(levels[i]) for i in frequent] + [OTHER, MISSING], dtype=object)
    group_of = np.full(len(levels) + 1, len(frequent))
    group_of[0] = len(frequent) + 1
    group_of[np.asarray(frequent, dtype=int) + 1] = np.arange(len(frequent))
    # A level literally called "missing" means the same as an empty value.
    group_of[np.flatnonzero(lowered == MISSING) + 1] = len(frequent) + 1
    return group_of, names


# ---------------------------------------------------------------- models


def _skew(x: np.ndarray) -> float:
    centred = x - x.mean()
    return float(np.mean(centred**3) / np.mean(centred**2) ** 1.5)


def _fit_layers(
    sources: list[_Source], train_pos: np.ndarray, y_train: np.ndarray, scoring: ScoringPolicy
) -> tuple[dict[str, _LayerFit], dict[str, str], dict[str, dict[str, float]], list[str]]:
    """Each layer's chosen model, why layers are off, the model comparison per layer and leaked features."""
    fits, switched_off, comparisons, leaked = {}, {}, {}, []
    for layer in LAYERS:
        own = [source for source in sources if source.layer == layer]
        encodings = [e for e in (_encode(s, train_pos, scoring) for s in own) if e is not None]
        clean = [e for e in encodings if _single_source_auc(e, train_pos, y_train) < scoring.max_single_feature_auc]
        leaked += [e.source.name for e in encodings if e not in clean]
        if not own:
            switched_off[layer] = f"no {LAYER_PREFIXES[layer]}* columns or {layer} signals"
        elif not clean:
            switched_off[layer] = f"all {len(own)} features are constant, empty or leak the outcome on the training rows"
        else:
            fits[layer], comparisons[layer] = _fit_layer(clean, train_pos, y_train, scoring)
    return fits, switched_off, comparisons, leaked


def _single_source_auc(encoding: _Encoding, train_pos: np.ndarray, y: np.ndarray) -> float:
    """How well this one source alone separates won from lost on training rows (0.5 = not at all, 1 = fully).

    Each design column's AUC in its better direction; a value CRMs fill in after the outcome (a "closed"
    tag, a quality rating) scores near 1, which no honest pre-sale signal does.
    """
    if y.min() == y.max():
        return 0.5
    # Mann-Whitney over every column at once: mid-ranks, so ties count half as roc_auc_score counts them.
    ranks = rankdata(encoding.design(train_pos), axis=0)
    won = y == 1
    n_won, n_lost = won.sum(), len(y) - won.sum()
    auc = (ranks[won].sum(axis=0) - n_won * (n_won + 1) / 2) / (n_won * n_lost)
    return float(np.max(np.maximum(auc, 1 - auc)))


def _fit_layer(
    encodings: list[_Encoding], train_pos: np.ndarray, y: np.ndarray, scoring: ScoringPolicy
) -> tuple[_LayerFit, dict[str, float]]:
    """Logistic regression (penalty and C chosen by cross-validated log loss) unless boosting is clearly better.

    An L1 penalty drops the columns that carry nothing (a region with thirty levels of noise) instead of
    shrinking every column as hard as the noisiest ones need; cross-validation decides whether it helps.
    """
    blocks = [e.design(train_pos) for e in encodings]
    x = np.hstack(blocks)
    folds = _folds(y, scoring, scoring.choice_folds)
    logistic_loss = {
        (penalty, c): loss for penalty in scoring.penalties
        for c, loss in _cv_path_log_loss(penalty, scoring.regularization_grid, x, y, folds, scoring.random_seed).items()
    }
    best_penalty, best_c = min(logistic_loss, key=logistic_loss.get)
    best_loss = logistic_loss[best_penalty, best_c]
    boosting_loss = _cv_log_loss(lambda: _boosting(scoring.random_seed), x, y, folds)
    boosted = boosting_loss < best_loss * (1 - scoring.model_choice_min_gain)
    comparison = {
        "cv_log_loss_logistic": best_loss, "cv_log_loss_boosting": boosting_loss,
        "regularization_c": best_c, "l1_penalty": float(best_penalty == "l1"), "boosting_chosen": float(boosted),
        "cv_folds": float(len(folds)),
    }
    return _fit_chosen(encodings, train_pos, y, comparison, scoring, x), comparison


def _fit_chosen(
    encodings: list[_Encoding], train_pos: np.ndarray, y: np.ndarray, choice: dict[str, float],
    scoring: ScoringPolicy, x: np.ndarray | None = None,
) -> _LayerFit:
    """The layer model `choice` names (boosting, or logistic regression with its C) fitted on the rows."""
    blocks = [e.design(train_pos) for e in encodings]
    x = np.hstack(blocks) if x is None else x
    if not choice["boosting_chosen"]:
        penalty = "l1" if choice["l1_penalty"] else "l2"
        model = _logistic(choice["regularization_c"], penalty, scoring.random_seed).fit(x, y)
        coefs = np.split(model.coef_[0], np.cumsum([b.shape[1] for b in blocks])[:-1])
        return _LayerFit(tuple(encodings), tuple(coefs), float(model.intercept_[0]))
    booster = _boosting(scoring.random_seed).fit(x, y)
    draft = _LayerFit(tuple(encodings), (), 0.0, booster)
    effect = np.abs(draft.contributions(draft.encodings, train_pos)[0]).mean(axis=0)
    coefs = tuple(np.full(len(e.columns), value) for e, value in zip(encodings, effect))
    return replace(draft, coefs=coefs)


def _logistic(c: float, penalty: str = "l2", seed: int | None = None) -> LogisticRegression:
    if penalty == "l1":
        # liblinear is the solver with an exact L1 path; it penalises the intercept too, which the layer's
        # calibration map and the combiner's intercept absorb. It visits coordinates in random order: the seed
        # makes reruns identical.
        return LogisticRegression(C=c, l1_ratio=1.0, solver="liblinear", max_iter=LBFGS_MAX_ITER, random_state=seed)
    return LogisticRegression(C=c, max_iter=LBFGS_MAX_ITER)


def _boosting(seed: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(**BOOSTING_PARAMS, early_stopping=False, random_state=seed)


def _folds(y: np.ndarray, scoring: ScoringPolicy, folds: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds over training rows (the policy's cv_folds unless `folds` says); fewer when a class has
    fewer rows than that."""
    k = max(2, min(folds or scoring.cv_folds, int(min(y.sum(), len(y) - y.sum()))))
    return list(StratifiedKFold(k, shuffle=True, random_state=scoring.random_seed).split(np.zeros(len(y)), y))


def _cv_path_log_loss(
    penalty: str, grid: list[float], x: np.ndarray, y: np.ndarray, folds: list, seed: int
) -> dict[float, float]:
    """Cross-validated log loss of logistic regression at every C of the grid, one warm-started path per fold.

    From the strongest penalty to the weakest, each fit starts from the previous C's coefficients, which are
    close, so the solver needs a few iterations instead of a cold start's dozens (liblinear, the L1 solver,
    always starts cold).
    """
    grid = sorted(grid)
    held = np.empty((len(grid), len(y)))
    for fit_rows, held_rows in folds:
        model = _logistic(grid[0], penalty, seed).set_params(warm_start=True)
        for i, c in enumerate(grid):
            held[i, held_rows] = model.set_params(C=c).fit(x[fit_rows], y[fit_rows]).predict_proba(x[held_rows])[:, 1]
    return {c: float(log_loss(y, np.clip(p, PROBABILITY_CLIP, 1 - PROBABILITY_CLIP))) for c, p in zip(grid, held)}


def _cv_log_loss(make_model, x: np.ndarray, y: np.ndarray, folds: list) -> float:
    held = np.empty(len(y))
    for fit_rows, held_rows in folds:
        held[held_rows] = make_model().fit(x[fit_rows], y[fit_rows]).predict_proba(x[held_rows])[:, 1]
    return float(log_loss(y, np.clip(held, PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)))


def _layer_logits(fits: dict[str, _LayerFit], n: int) -> tuple[np.ndarray, list[slice], np.ndarray]:
    """Per-account contribution of every source (one column block per layer) and each layer's logit."""
    sizes = [len(fit.encodings) for fit in fits.values()]
    # Column-major, because it is filled one source (column) at a time.
    contrib = np.empty((n, sum(sizes)), dtype=np.float32, order="F")
    starts = np.concatenate([[0], np.cumsum(sizes)])
    blocks = [slice(int(a), int(b)) for a, b in pairwise(starts)]
    logits = np.empty((n, len(fits)))
    for j, (fit, block) in enumerate(zip(fits.values(), blocks)):
        if fit.booster is None:
            for k, (encoding, coef) in enumerate(zip(fit.encodings, fit.coefs)):
                contrib[:, block.start + k] = encoding.contribution(coef)
            logits[:, j] = fit.intercept + contrib[:, block].sum(axis=1, dtype=float)
            continue
        for start in range(0, n, EXPLAIN_CHUNK):
            rows = np.arange(start, min(n, start + EXPLAIN_CHUNK))
            contrib[rows, block], logits[rows, j] = fit.contributions(fit.encodings, rows)
    return contrib, blocks, logits


def _calibrate_layers(logits: np.ndarray, held_logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each layer's logit Platt-scaled on its out-of-fold logits of the training rows: a probability per row."""
    columns = []
    for j in range(logits.shape[1]):
        slope, offset = _fit_platt(held_logits[:, j], y)
        columns.append(expit(slope * logits[:, j] + offset))
    return np.column_stack(columns)


def _fit_platt(score: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling: slope and offset mapping a logit to a calibrated probability.

    Targets are Platt's smoothed labels, which keep the fit finite when the classes separate.
    """
    n_pos = y.sum()
    n_neg = len(y) - n_pos
    target = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        z = params[0] * score + params[1]
        residual = expit(z) - target
        value = np.sum(np.logaddexp(0, z) - target * z)
        return float(value), np.array([residual @ score, residual.sum()])

    result = minimize(loss, x0=np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    return float(result.x[0]), float(result.x[1])


def _fit_combiner(
    layer_logits: np.ndarray, y: np.ndarray, scoring: ScoringPolicy, ages: np.ndarray | None = None
) -> tuple[_Combiner, dict[str, float]]:
    """Logistic weights on the layer logits, calibrated on out-of-fold combiner scores; and how it chose (metrics).

    Sigmoid (Platt) unless isotonic has a clearly lower cross-validated Brier score on those scores: the
    step function needs more rows to be smooth, so it must earn its place.
    `ages` (days each row closed before the latest one, dated outcomes only) let the calibration follow a base
    rate that moved recently (see _recent_shift).
    """
    c, seed = scoring.regularization_c, scoring.random_seed
    model = _logistic(c).fit(layer_logits, y)
    held = _out_of_fold_logits(layer_logits, y, c, seed)
    slope, offset = _fit_platt(held, y)
    brier = {"sigmoid": float("nan"), "isotonic": float("nan")}
    folds = min(CALIBRATION_FOLDS, int(min(y.sum(), len(y) - y.sum())))
    if folds >= 2:
        p_sigmoid, p_isotonic = np.empty(len(y)), np.empty(len(y))
        for fit_rows, held_rows in StratifiedKFold(folds, shuffle=True, random_state=seed).split(held, y):
            a, b = _fit_platt(held[fit_rows], y[fit_rows])
            p_sigmoid[held_rows] = expit(a * held[held_rows] + b)
            p_isotonic[held_rows] = _isotonic(held[fit_rows], y[fit_rows]).predict(held[held_rows])
        brier = {"sigmoid": float(np.mean((p_sigmoid - y) ** 2)), "isotonic": float(np.mean((p_isotonic - y) ** 2))}
    isotonic = brier["isotonic"] < brier["sigmoid"] * (1 - scoring.calibration_choice_min_gain)
    combiner = _Combiner(model.coef_[0].copy(), float(model.intercept_[0]), slope, offset,
                         _isotonic(held, y) if isotonic else None)
    facts = {"cv_brier_sigmoid": brier["sigmoid"], "cv_brier_isotonic": brier["isotonic"],
             "isotonic_chosen": float(isotonic), "recent_logit_shift": 0.0, "recent_shift_half_life_days": float("nan")}
    if ages is not None:
        calibrated = combiner.isotonic.predict(held) if isotonic else expit(slope * held + offset)
        shift, half_life = _recent_shift(calibrated, y, ages, scoring)
        combiner = replace(combiner, shift=shift)
        facts.update(recent_logit_shift=shift, recent_shift_half_life_days=half_life)
    return combiner, facts


def _shifted(p: np.ndarray, shift: float) -> np.ndarray:
    """Probabilities moved by `shift` on the logit scale (order kept)."""
    if shift == 0.0:
        return p
    clipped = np.clip(p, PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)
    return expit(np.log(clipped / (1 - clipped)) + shift)


def _recent_shift(p: np.ndarray, y: np.ndarray, ages: np.ndarray, scoring: ScoringPolicy) -> tuple[float, float]:
    """Logit shift toward the recency-weighted outcomes, and its half-life (days; NaN when there is no shift).

    Calibration learns from the whole training period; when conversion drifted (a funnel that converts more
    and more), its latest outcomes say more about the next period. How fast to forget is chosen by evidence,
    as exponential smoothing chooses its rate: each candidate half-life's shift is estimated on all but the
    latest `test_share` of the rows and judged by the log loss it gives those latest rows; the calibration as
    fitted (no shift) stands unless a candidate beats it there.
    """
    order = np.argsort(ages, kind="stable")
    split_at = _share(len(ages), scoring.test_share)
    latest, earlier = order[:split_at], order[split_at:]
    if len(earlier) == 0:
        return 0.0, float("nan")
    earlier_ages = ages[earlier] - ages[earlier].min()

    def loss(shift: float) -> float:
        return float(log_loss(y[latest], np.clip(_shifted(p[latest], shift), PROBABILITY_CLIP, 1 - PROBABILITY_CLIP),
                              labels=[0, 1]))

    losses = {half_life: loss(_weighted_shift(p[earlier], y[earlier], earlier_ages, half_life, scoring))
              for half_life in scoring.calibration_half_lives_days}
    best = min(losses, key=losses.get)
    if losses[best] >= loss(0.0):
        return 0.0, float("nan")
    shift = _weighted_shift(p, y, ages, best, scoring)
    return shift, (best if shift else float("nan"))


def _weighted_shift(p: np.ndarray, y: np.ndarray, ages: np.ndarray, half_life: float, scoring: ScoringPolicy) -> float:
    """Logit shift making calibrated predictions p match outcomes weighted 2^(-age / half-life), when they differ.

    The shift solves sum w (p' - y) = 0 (within MAX_LOGIT_SHIFT) and is applied only when the weighted gap
    exceeds `recalibration_min_z` of its standard error under p, so a stable base rate keeps the calibration.
    """
    w = 0.5 ** (ages / half_life)
    gap = float(w @ (y - p))
    spread = float(np.sqrt(w**2 @ (p * (1 - p))))
    if spread == 0 or abs(gap) < scoring.recalibration_min_z * spread:
        return 0.0

    def excess(shift: float) -> float:
        return float(w @ (_shifted(p, shift) - y))

    # Weighted outcomes all of one class have no finite root: the bound is as far as the shift goes.
    if excess(-MAX_LOGIT_SHIFT) >= 0:
        return -MAX_LOGIT_SHIFT
    if excess(MAX_LOGIT_SHIFT) <= 0:
        return MAX_LOGIT_SHIFT
    return float(brentq(excess, -MAX_LOGIT_SHIFT, MAX_LOGIT_SHIFT))


def _cross_validated(run: _Run, sources: list[_Source]) -> _Pooled:
    """Out-of-fold conversion probability of every closed outcome, for a held-out ECE on thousands of rows.

    Per fold the whole recipe is refitted on the other folds (see _refit_recipe); the fold's rows are then
    predicted, never seen.
    """
    y = run.y
    held = np.empty(len(y))
    group = np.empty(len(y), dtype=np.int64)
    for k, (rest, fold) in enumerate(_folds(y, run.policy.scoring)):
        held[fold] = _refit_recipe(run, sources, rest, fold, None)
        group[fold] = k
    return _Pooled(CROSS_VALIDATED, np.arange(len(y)), held, group, "folds")


def _back_test(run: _Run, labels: np.ndarray, sources: list[_Source], test_probability: np.ndarray) -> _Pooled:
    """Rolling-origin back-test: out-of-time predictions of the latest windows of closed outcomes, pooled.

    Window 0 is the test split, predicted by the run's model. Each earlier window (as many closed outcomes
    as the test split, just before the previous window) is predicted by the whole recipe refitted on the
    outcomes before it alone (see _refit_recipe), so every prediction is of an outcome after everything its
    model learned from, choices included. Windows stop early once the pooled rows are enough (see the policy's
    pooled_enough_rows), or when the rows before one no longer hold both classes often enough for cross-fitting.
    """
    scoring = run.policy.scoring
    y = run.y
    order = _time_order(run.closed)
    test = np.flatnonzero(labels == TEST)
    rows, probability, group = [test], [test_probability], [np.zeros(len(test), dtype=np.int64)]
    stop = len(order) - len(test)
    for k in range(1, scoring.back_test_windows):
        if sum(map(len, rows)) >= scoring.pooled_enough_rows:
            break
        start = stop - len(test)
        before = order[:max(start, 0)]
        won = y[before].sum()
        if start <= 0 or min(won, len(before) - won) < scoring.cv_folds:
            break
        window = order[start:stop]
        rows.append(window)
        probability.append(_refit_recipe(run, sources, before, window, _ages(run, None, before)))
        group.append(np.full(len(window), k, dtype=np.int64))
        stop = start
    run.notes["back_test"] = (
        f"{len(rows)} out-of-time windows of {len(test)} closed outcomes each, from "
        f"{run.closed['date'].iloc[rows[-1]].min().date()}; each predicted by a model fitted and chosen only on "
        "the outcomes before it"
    )
    return _Pooled(BACK_TEST, np.concatenate(rows), np.concatenate(probability), np.concatenate(group), "windows")


def _refit_recipe(
    run: _Run, sources: list[_Source], fit_rows: np.ndarray, predict_rows: np.ndarray, ages: np.ndarray | None
) -> np.ndarray:
    """Conversion probability of the closed outcomes predict_rows from the whole recipe fitted on fit_rows alone.

    Encodings, the leak screen, each layer's model choice and fit, the combiner, its calibration choice and
    the recent-outcomes shift (when `ages` are given) all learn from fit_rows, as the run's model learns from
    its train split; no outcome of predict_rows reaches any of them.
    """
    scoring = run.policy.scoring
    pos, y = run.pos, run.y
    fits, _, choices, _ = _fit_layers(sources, pos[fit_rows], y[fit_rows], scoring)
    if not fits:
        return np.full(len(predict_rows), y[fit_rows].mean())
    inner = _out_of_fold_layer_logits(fits, choices, pos[fit_rows], y[fit_rows], scoring)
    combiner, _ = _fit_combiner(inner, y[fit_rows], scoring, ages)
    logits = np.column_stack([fit.contributions(fit.encodings, pos[predict_rows])[1] for fit in fits.values()])
    return combiner.probability(logits)


def _out_of_fold_layer_logits(
    fits: dict[str, _LayerFit], choices: dict[str, dict[str, float]], pos: np.ndarray, y: np.ndarray,
    scoring: ScoringPolicy,
) -> np.ndarray:
    """Every layer's logit of each row (rows x layers) from the layer refitted without that row's fold."""
    held = np.empty((len(y), len(fits)))
    for fit_rows, held_rows in _folds(y, scoring):
        held[held_rows] = _refit_logits(fits, choices, pos, y, fit_rows, held_rows, scoring)
    return held


def _refit_logits(
    fits: dict[str, _LayerFit], choices: dict[str, dict[str, float]], pos: np.ndarray, y: np.ndarray,
    fit_rows: np.ndarray, predict_rows: np.ndarray, scoring: ScoringPolicy,
) -> np.ndarray:
    """Layer logits of predict_rows (rows x layers) from each layer's recipe refitted on fit_rows.

    Both index pos and y; encodings are refitted too, so no statistic of predict_rows reaches them.
    """
    columns = []
    for layer, fit in fits.items():
        encodings = [e for e in (_encode(old.source, pos[fit_rows], scoring) for old in fit.encodings) if e is not None]
        if encodings:
            refit = _fit_chosen(encodings, pos[fit_rows], y[fit_rows], choices[layer], scoring)
            columns.append(refit.contributions(refit.encodings, pos[predict_rows])[1])
        else:
            # Every feature of the layer is constant on these rows: the layer knows only the base rate.
            rate = y[fit_rows].mean()
            columns.append(np.full(len(predict_rows), np.log(rate / (1 - rate))))
    return np.column_stack(columns)


def _ages(run: _Run, split: _Split | None, rows: np.ndarray) -> np.ndarray | None:
    """Days each of the closed outcomes `rows` (mask or positions) closed before their latest, None when undated.

    `split` None means the rows are known to be dated (a back-test window's predecessors). Undated rows count
    as the oldest.
    """
    if split is not None and split.method != "time":
        return None
    dates = run.closed["date"].iloc[np.flatnonzero(rows) if rows.dtype == bool else rows]
    days = (dates.max() - dates).dt.total_seconds().to_numpy() / 86_400
    return np.where(np.isnan(days), np.nanmax(days, initial=0.0), days)


def _isotonic(score: np.ndarray, y: np.ndarray) -> IsotonicRegression:
    return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(score, y)


def _out_of_fold_logits(x: np.ndarray, y: np.ndarray, c: float, seed: int) -> np.ndarray:
    """Combiner logits for each row from a combiner that did not see that row."""
    folds = min(CALIBRATION_FOLDS, int(min(y.sum(), len(y) - y.sum())))
    if folds < 2:
        return _logistic(c).fit(x, y).decision_function(x)
    logits = np.empty(len(y))
    for fit_rows, held_rows in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        logits[held_rows] = _logistic(c).fit(x[fit_rows], y[fit_rows]).decision_function(x[held_rows])
    return logits


# ---------------------------------------------------------------- explanations


def _explain(
    contrib: np.ndarray, blocks: list[slice], fits: dict[str, _LayerFit], combiner: _Combiner
) -> pl.Series:
    """Top factors in units of the final calibrated logit: scales each layer block of contrib in place."""
    for weight, block in zip(combiner.weights, blocks):
        contrib[:, block] *= np.float32(combiner.slope * weight)
    # Row-major from here: the top factors are picked along each account's row.
    encodings = [encoding for fit in fits.values() for encoding in fit.encodings]
    return _top_factors(np.ascontiguousarray(contrib), encodings)


def _top_factors(contrib: np.ndarray, encodings: list[_Encoding]) -> pl.Series:
    """'+ a: v (+0.42); ... | - b: w (-0.20); ...': the strongest pushes up and down, per account."""
    n, width = contrib.shape
    k = min(TOP_FACTORS_PER_SIDE, width)
    strongest = np.hstack([_strongest(contrib, k, largest=True), _strongest(contrib, k, largest=False)])
    amount = np.take_along_axis(contrib, strongest, axis=1)
    side = np.repeat([1.0, -1.0], k)
    # Slot-major order makes each slot (1st up, 2nd up, ...) one contiguous block of n accounts.
    rows = np.tile(np.arange(n), 2 * k)
    source = strongest.T.ravel()
    amount = amount.T.ravel().astype(float)
    shown = np.repeat(side, n) * amount >= MIN_SHOWN_CONTRIBUTION
    text = _factor_texts(rows, source, amount, shown, encodings)
    slots = pl.DataFrame({f"s{j}": text.slice(j * n, n) for j in range(2 * k)})
    up = pl.concat_str([pl.col(f"s{j}") for j in range(k)], separator="; ", ignore_nulls=True)
    down = pl.concat_str([pl.col(f"s{j}") for j in range(k, 2 * k)], separator="; ", ignore_nulls=True)
    both = (up != "") & (down != "")
    joined = pl.when(both).then(pl.concat_str([up, pl.lit(" | "), down])).otherwise(up + down)
    return slots.select(joined.alias("top_factors")).to_series()


def _strongest(contrib: np.ndarray, k: int, largest: bool) -> np.ndarray:
    """Column indices of the k largest (or smallest) values per row, strongest first."""
    remaining = contrib.copy()
    rows = np.arange(len(contrib))
    pick, spent = (np.argmax, -np.inf) if largest else (np.argmin, np.inf)
    chosen = np.empty((len(contrib), k), dtype=np.intp)
    # k vectorised passes over the whole matrix beat a partial sort of every row when k is this small.
    for slot in range(k):
        chosen[:, slot] = pick(remaining, axis=1)
        remaining[rows, chosen[:, slot]] = spent
    return chosen


def _factor_texts(
    rows: np.ndarray, source: np.ndarray, amount: np.ndarray, shown: np.ndarray, encodings: list[_Encoding]
) -> pl.Series:
    number, category, kind = _factor_values(rows, source, encodings)
    names = [name for e in encodings if e.group_names is not None for name in e.group_names]
    frame = pl.DataFrame({
        "label": pl.Series([e.source.label for e in encodings], dtype=pl.String).gather(source),
        "number": number,
        "category": pl.Series(names or [""], dtype=pl.String).gather(category),
        "kind": kind,
        "amount": amount,
        "shown": shown,
    })
    value = (
        pl.when(pl.col("kind") == CATEGORY).then(pl.col("category"))
        .when(pl.col("number").is_nan()).then(pl.lit(MISSING))
        .when(pl.col("kind") == FLAG)
        .then(pl.when(pl.col("number") > 0.5).then(pl.lit("yes")).otherwise(pl.lit("no")))
        .otherwise(_format_number(pl.col("number")))
    )
    sign = pl.when(pl.col("amount") > 0).then(pl.lit("+")).otherwise(pl.lit("-"))
    text = pl.concat_str([
        sign, pl.lit(" "), pl.col("label"), pl.lit(": "), value, pl.lit(" ("), sign,
        _two_decimals(pl.col("amount").abs()), pl.lit(")"),
    ])
    return frame.select(pl.when(pl.col("shown")).then(text).alias("text")).to_series()


def _factor_values(
    rows: np.ndarray, source: np.ndarray, encodings: list[_Encoding]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each factor's account value: a number, a 0/1 flag, or an index into the category names."""
    number = np.zeros(len(rows))
    category = np.zeros(len(rows), dtype=np.int64)
    kind = np.full(len(rows), NUMBER, dtype=np.int8)
    order = np.argsort(source, kind="stable")
    bounds = np.searchsorted(source[order], np.arange(len(encodings) + 1))
    offset = 0
    # One pass per feature (not per account): each gathers the values of the accounts it explains.
    for j, encoding in enumerate(encodings):
        picked = order[bounds[j]:bounds[j + 1]]
        if encoding.group_names is None:
            number[picked] = encoding.source.values[rows[picked]]
            kind[picked] = FLAG if encoding.source.is_flag else NUMBER
        else:
            category[picked] = offset + encoding.grouped(rows[picked])
            kind[picked] = CATEGORY
            offset += len(encoding.group_names)
    return number, category, kind


def _two_decimals(x: pl.Expr) -> pl.Expr:
    """A non-negative number with exactly two decimals, e.g. 0.40."""
    cents = (x * 100).round(0).cast(pl.Int64, strict=False)
    return pl.concat_str([(cents // 100).cast(pl.String), pl.lit("."),
                          (cents % 100).cast(pl.String).str.zfill(2)])


def _format_number(x: pl.Expr) -> pl.Expr:
    """Whole numbers without decimals, others with two; huge ones in the engine's default format."""
    cents = (x.abs() * 100).round(0).cast(pl.Int64, strict=False)
    sign = pl.when((x < 0) & (cents > 0)).then(pl.lit("-")).otherwise(pl.lit(""))
    whole = (cents // 100).cast(pl.String)
    fraction = pl.when(cents % 100 == 0).then(pl.lit("")).otherwise(
        pl.lit(".") + (cents % 100).cast(pl.String).str.zfill(2)
    )
    # Above this the cents would overflow a 64-bit integer.
    return pl.when(x.abs() < 1e15).then(pl.concat_str([sign, whole, fraction])).otherwise(x.cast(pl.String))


# ---------------------------------------------------------------- potential and output tables


def _expected_deal_value(
    features: pd.DataFrame, outcomes: pd.DataFrame, index: pd.Index, cap_quantile: float
) -> np.ndarray:
    """Median won amount: the account's own, else its industry's, else everyone's, else 1.0.

    Won amounts are capped at `cap_quantile` first: one declared outlier (a 50M deal among thousands)
    would otherwise hold most of the potential and no territory plan could balance it.
    """
    amount = pd.to_numeric(outcomes["amount"], errors="coerce")
    won = _outcome(outcomes) == "won"
    pos = index.get_indexer(outcomes["account_id"])
    # A won deal without a positive amount says nothing about deal size.
    usable = (won & (amount > 0)).to_numpy(dtype=bool, na_value=False) & (pos >= 0)
    if not usable.any():
        return np.ones(len(index))
    won_amounts = amount[usable].to_numpy(dtype=float)
    deals = pd.DataFrame({"pos": pos[usable], "amount": np.minimum(won_amounts, np.quantile(won_amounts, cap_quantile))})
    value = deals.groupby("pos")["amount"].median().reindex(np.arange(len(index)))
    if "industry" in features.columns:
        industry = features["industry"].astype("string").reset_index(drop=True)
        by_industry = deals.assign(industry=industry.to_numpy()[deals["pos"]]).groupby("industry")["amount"]
        value = value.fillna(industry.map(by_industry.median()).astype(float))
    return value.fillna(float(deals["amount"].median())).to_numpy(dtype=float)


def _score_frame(
    run: _Run, layer_scores: dict[str, np.ndarray], probability: np.ndarray, factors: pl.Series
) -> pd.DataFrame:
    n = len(run.features)
    priority = percentile_rank(probability)
    tiers = _capacity_tiers(run, probability, priority)
    frame = pd.DataFrame({
        "account_id": run.features["account_id"].to_numpy(),
        **{f"{layer}_score": layer_scores.get(layer, np.full(n, np.nan)) for layer in LAYERS},
        "conversion_probability": probability,
        "priority_score": priority,
        "tier": pd.array(tiers, dtype="str"),
        "top_factors": pd.array(factors.to_arrow(), dtype="str"),
        "expected_deal_value": run.deal_value,
        "potential": probability * run.deal_value,
        "low_confidence": np.full(n, bool(run.reasons)),
        "model_version": run.model_version,
        "scored_at": pd.Timestamp(run.scored_at),
    })
    return frame[list(SCORE_COLUMNS)]


def _capacity_tiers(run: _Run, probability: np.ndarray, priority: np.ndarray) -> np.ndarray:
    """Policy tiers, with A kept to accounts above the probability floor and to what the owner reps can work.

    The reasons (which limit bound the A tier and where the cut fell) go to the metrics and the summary.
    """
    policy = run.policy.tiers
    tiers = assign_tiers(priority, policy)
    by_share = tiers == "A"
    above_floor = by_share & (probability >= policy.a_min_probability)
    a_rows = np.flatnonzero(above_floor)
    limits = {"policy share": int(by_share.sum()), "probability floor": len(a_rows)}
    tolerance = run.policy.territories.tolerance_of("a_count")
    if run.a_capacity is not None:
        # Territories may hold up to (1 + tolerance) times their share of A accounts, so a plan balanced within
        # the tolerance keeps every owner rep inside capacity only if the A tier fills 1 / (1 + tolerance) of it.
        limits["AE capacity"] = int(np.floor(run.a_capacity / (1 + tolerance) + 1e-9))
    count = min(limits.values())
    # The strongest accounts keep A; position breaks ties so the count is exact.
    keep = a_rows[np.lexsort((a_rows, -probability[a_rows]))[:count]]
    tiers[by_share] = "B"
    tiers[keep] = "A"
    bound = min(limits, key=lambda k: (limits[k], list(limits).index(k)))
    cutoff = float(probability[keep].min()) if count else float("nan")
    capacity = "unknown" if run.a_capacity is None else (
        f"{limits['AE capacity']} = {run.a_capacity:.0f} A accounts the owner reps can work / (1 + the "
        f"{tolerance:.0%} A-count balance tolerance)"
    )
    run.notes["a_tier_cutoff"] = (
        f"A = {count} accounts with conversion probability >= {cutoff:.3f}; bound by the {bound} "
        f"(policy share {limits['policy share']}, above the {policy.a_min_probability:.2f} floor "
        f"{limits['probability floor']}, AE capacity {capacity})"
    )
    run.extra_metrics.extend([
        ("tiers", "all", "a_count", float(count)),
        ("tiers", "all", "a_cutoff_probability", cutoff),
        ("tiers", "all", "a_min_probability", policy.a_min_probability),
        ("tiers", "all", "a_policy_share_count", float(limits["policy share"])),
        ("tiers", "all", "a_above_floor_count", float(limits["probability floor"])),
        ("tiers", "all", "a_capacity", float(run.a_capacity) if run.a_capacity is not None else float("nan")),
        ("tiers", "all", "a_balance_tolerance", tolerance),
        ("tiers", "all", "a_capacity_limit", float(limits.get("AE capacity", float("nan")))),
        ("tiers", "all", "a_bound_by_capacity", float(bound == "AE capacity")),
    ])
    return tiers


def _metric_frame(
    run: _Run, probabilities: dict[str, np.ndarray], labels: np.ndarray, pooled: _Pooled | None
) -> pd.DataFrame:
    """Metrics of each layer's and the combined probability on every split, plus the low-confidence flag.

    With a trained model the combined probability is also judged on the pooled held-out predictions (split
    back_test or cross_validated, see _Pooled), with their window or fold count.
    """
    pos, y, bins = run.pos, run.y, run.policy.scoring.ece_bins
    evaluation = _evaluation_split(labels)
    # The three splits always have rows (n 0 when empty); in_sample only on the paths that use it.
    splits = [code for code in range(len(SPLITS)) if code != IN_SAMPLE or evaluation == IN_SAMPLE]
    records = [
        (run.model_version, layer, SPLITS[code], metric, value)
        for layer, probability in probabilities.items()
        for code in splits
        for metric, value in binary_metrics(y[labels == code], probability[pos[labels == code]], bins).items()
    ]
    records.append((run.model_version, "combined", "train", "low_confidence", float(bool(run.reasons))))
    # The counts the policy minimums are judged on, so a reader sees which one a low-confidence run fell short of.
    records += [(run.model_version, "combined", "train", key, float(value)) for key, value in run.facts.items()]
    # ECE depends on its bins and rows, so the bin count and the noise floor travel with it.
    scoring = run.policy.scoring
    evaluated = labels == evaluation
    records += [
        (run.model_version, "combined", SPLITS[evaluation], "ece_bins", float(bins)),
        (run.model_version, "combined", SPLITS[evaluation], "ece_noise_floor",
         ece_noise_floor(probabilities["combined"][pos[evaluated]], bins, ECE_NOISE_DRAWS, scoring.random_seed)),
    ]
    train, test = y[labels == TRAIN], y[labels == TEST]
    if len(train) and len(test) and train.mean() > 0:
        # A later period converting at another rate shifts every held-out metric; analysts need to see it.
        records.append((run.model_version, "combined", "test", "base_rate_ratio_to_train", float(test.mean() / train.mean())))
    if pooled is not None:
        records += [(run.model_version, "combined", pooled.split, metric, value)
                    for metric, value in binary_metrics(y[pooled.rows], pooled.probability, bins).items()]
        records += [(run.model_version, "combined", pooled.split, "ece_bins", float(bins)),
                    (run.model_version, "combined", pooled.split, "ece_noise_floor",
                     ece_noise_floor(pooled.probability, bins, ECE_NOISE_DRAWS, scoring.random_seed)),
                    (run.model_version, "combined", pooled.split, pooled.groups, float(len(np.unique(pooled.group))))]
    records += [(run.model_version, *row) for row in run.extra_metrics]
    return pd.DataFrame(records, columns=list(METRIC_COLUMNS))


def _weight_frame(run: _Run, fits: dict[str, _LayerFit], combiner: _Combiner | None) -> pd.DataFrame:
    """Coefficients on standardised design columns per layer, and the combiner's weight per layer."""
    records = [
        (run.model_version, layer, column, float(weight))
        for layer, fit in fits.items()
        for encoding, coef in zip(fit.encodings, fit.coefs)
        for column, weight in zip(encoding.columns, coef)
    ]
    if combiner is not None:
        records += [
            (run.model_version, "combined", layer, float(w))
            for layer, w in zip(fits, combiner.weights)
        ]
    return pd.DataFrame(records, columns=list(WEIGHT_COLUMNS)).astype({"weight": float})


def _tier_lift(run: _Run, tiers: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    records = []
    for tier in TIERS:
        outcomes = y[tiers == tier]
        rate = float(outcomes.mean()) if len(outcomes) else float("nan")
        records.append((run.model_version, tier, len(outcomes), int(outcomes.sum()), rate))
    return pd.DataFrame(records, columns=list(TIER_LIFT_COLUMNS))


def _data_window(dates: pd.Series) -> dict:
    """First and last close date of the outcomes a model learned from (None when undated)."""
    dated = dates.dropna()
    return {
        "from": str(dated.min().date()) if len(dated) else None,
        "to": str(dated.max().date()) if len(dated) else None,
        "closed_outcomes": len(dates),
    }


def _summary(
    run: _Run,
    split: _Split,
    labels: np.ndarray,
    switched_off: dict[str, str],
    fits: dict[str, _LayerFit],
    combiner: _Combiner | None,
    metrics: pd.DataFrame,
) -> dict:
    combined = metrics[metrics["layer"] == "combined"]
    evaluation = SPLITS[_evaluation_split(labels)]
    test = combined[combined["split"] == evaluation]
    test_value = {metric: float(value) for metric, value in zip(test["metric"], test["value"])}
    pooled = combined[combined["split"].isin([BACK_TEST, CROSS_VALIDATED])]
    pooled_value = {metric: float(value) for metric, value in zip(pooled["metric"], pooled["value"])}
    counts = np.bincount(labels, minlength=len(SPLITS))
    return {
        "model_version": run.model_version,
        "active_layers": list(fits),
        "switched_off_layers": switched_off,
        "features_per_layer": {layer: len(fit.encodings) for layer, fit in fits.items()},
        "features": [encoding.source.name for fit in fits.values() for encoding in fit.encodings],
        "data_window": _data_window(run.closed["date"][labels < TEST]),
        "layer_models": {
            layer: "logistic regression" if fit.booster is None else "gradient boosting" for layer, fit in fits.items()
        },
        "combiner_weights": dict(zip(fits, combiner.weights.tolist())) if combiner else {},
        "split_method": split.method,
        "split_note": split.note,
        "n": {name: int(count) for name, count in zip(SPLITS, counts) if name != SPLITS[IN_SAMPLE] or count},
        "evaluation": _evaluation_label(split, evaluation, counts),
        "tier_lift_rows": _evaluation_label(split, evaluation, counts) if fits else
        "all closed outcomes (no model, no held-out split)",
        "test_auc": test_value.get("auc"),
        "test_brier": test_value.get("brier"),
        "test_ece": test_value.get("ece"),
        "test_log_loss": test_value.get("log_loss"),
        "pooled_split": pooled["split"].iloc[0] if len(pooled) else None,
        "pooled_auc": pooled_value.get("auc"),
        "pooled_brier": pooled_value.get("brier"),
        "pooled_ece": pooled_value.get("ece"),
        "pooled_ece_noise_floor": pooled_value.get("ece_noise_floor"),
        "pooled_n": int(pooled_value["n"]) if "n" in pooled_value else None,
        "ece_scheme": f"{run.policy.scoring.ece_bins} equal-mass bins (rows sorted by predicted probability)",
        "low_confidence": bool(run.reasons),
        "low_confidence_reasons": run.reasons,
        "ece_bins": run.policy.scoring.ece_bins,
        **run.notes,
        **run.facts,
    }


def _evaluation_split(labels: np.ndarray) -> int:
    """The split a run's headline metrics come from: in_sample when no model was fitted this run, else test."""
    return IN_SAMPLE if (labels == IN_SAMPLE).any() else TEST


def _evaluation_label(split: _Split, evaluation: str, counts: np.ndarray) -> str:
    """What the headline metrics are, in words a reviewer can check."""
    n = int(counts[SPLITS.index(evaluation)])
    if evaluation == SPLITS[IN_SAMPLE]:
        return f"in-sample, {split.method} (all {n} closed outcomes; nothing held out)"
    how = f"latest by {split.ordered_by}" if split.method == "time" else "stratified at random"
    return f"held-out test ({n} closed outcomes, {how})"


# ---------------------------------------------------------------- the champion model applied to new rows


@dataclass(frozen=True)
class ChampionModel:
    """A scoring run's fitted layers and combiner, without its per-account arrays, to score new rows.

    ``population`` is the sorted conversion probability of every account the run scored: a new row's
    priority score is its percentile among them, so its tier means the same as an account's tier.
    """

    model_version: str
    fits: dict[str, _LayerFit]
    combiner: _Combiner | None
    base_rate: float
    population: np.ndarray
    tiers: TierPolicy
    # Placeholders read as missing in training ("Select", "N/A" ...), so new rows read them the same way.
    missing_tokens: tuple[str, ...] = tuple(ScoringPolicy().missing_value_tokens)


def _champion(
    run: _Run, fits: dict[str, _LayerFit], combiner: _Combiner | None, probability: np.ndarray
) -> ChampionModel:
    def lean(encoding: _Encoding) -> _Encoding:
        # The training accounts' values would make the saved model as large as the warehouse.
        return replace(encoding, source=replace(encoding.source, values=encoding.source.values[:0]))

    lean_fits = {layer: replace(fit, encodings=tuple(lean(e) for e in fit.encodings)) for layer, fit in fits.items()}
    base_rate = float(run.y.mean()) if len(run.y) else 0.5
    return ChampionModel(run.model_version, lean_fits, combiner, base_rate, np.sort(probability), run.policy.tiers,
                         tuple(run.policy.scoring.missing_value_tokens))


def score_new_rows(
    model: ChampionModel, features: pd.DataFrame, technologies: pd.DataFrame, attributes: pd.DataFrame
) -> pd.DataFrame:
    """Conversion probability, priority score and tier of rows the model was not trained on.

    ``features`` has account_id and the feature columns the rows have (a missing column is a missing
    value); ``technologies`` (account_id, technology) and ``attributes`` (account_id, attribute, value)
    are long and may be empty. Signals are missing for new rows. Deterministic: the same rows give the
    same scores.
    """
    index = pd.Index(features["account_id"])
    if model.combiner is None:
        probability = np.full(len(index), model.base_rate)
    else:
        logits = np.zeros((len(index), len(model.fits)))
        for j, fit in enumerate(model.fits.values()):
            new = tuple(_encoding_for_new_rows(e, features, technologies, attributes, index, model) for e in fit.encodings)
            logits[:, j] = fit.contributions(new, np.arange(len(index)))[1]
        probability = model.combiner.probability(logits)
    below = np.searchsorted(model.population, probability, side="left")
    at_or_below = np.searchsorted(model.population, probability, side="right")
    # Mid-rank, as percentile_rank gives an account of the scored population.
    priority = (below + at_or_below) / 2 / max(len(model.population), 1) * 100.0
    return pd.DataFrame({
        "account_id": index.to_numpy(),
        "conversion_probability": probability,
        "priority_score": priority,
        "tier": assign_tiers(priority, model.tiers),
        "model_version": model.model_version,
    })


def _encoding_for_new_rows(
    encoding: _Encoding,
    features: pd.DataFrame,
    technologies: pd.DataFrame,
    attributes: pd.DataFrame,
    index: pd.Index,
    model: ChampionModel,
) -> _Encoding:
    """The encoding with its source values taken from the new rows, levels unseen in training as 'other'."""
    source, n = encoding.source, len(index)
    name = source.name
    if name.startswith("technology:"):
        used = technologies[index.get_indexer(technologies["account_id"]) >= 0]
        text = _text(used["technology"])
        if name == "technology:other":
            named = {e.source.name.removeprefix("technology:") for f in model.fits.values() for e in f.encodings}
            text = text[~text.isin(named)]
        else:
            text = text[text == name.removeprefix("technology:")]
        values = np.zeros(n)
        values[index.get_indexer(used.loc[text.dropna().index, "account_id"])] = 1.0
        return replace(encoding, source=replace(source, values=values))
    if name.startswith("attribute:"):
        rows = attributes[attributes["attribute"].astype(str) == name.removeprefix("attribute:")]
        column = pd.Series(pd.NA, index=range(n), dtype="string")
        pos = index.get_indexer(rows["account_id"])
        column.iloc[pos[pos >= 0]] = _text(rows["value"]).to_numpy()[pos >= 0]
        column = _placeholders_missing(column, model.missing_tokens)
    elif name in features.columns:
        column = features[name].reset_index(drop=True)
    else:
        # Signals, and features the new rows lack, are missing.
        column = pd.Series(np.nan, index=range(n))
    if source.levels is None:
        number = _finite(pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan))
        return replace(encoding, source=replace(source, values=number))
    return _with_text(encoding, _text(column))


def _with_text(encoding: _Encoding, text: pd.Series) -> _Encoding:
    """A categorical encoding whose source now holds `text` (one per row), coded into the trained levels;
    levels unseen in training fall into 'other'."""
    source = encoding.source
    known = pd.Index(source.levels)
    unseen = pd.Index(text.dropna().unique()).difference(known)
    levels = known.append(unseen)
    codes = levels.get_indexer(text.fillna("").to_numpy())
    codes[text.isna().to_numpy()] = -1
    other = len(encoding.group_names) - 2
    group_of = np.concatenate([encoding.group_of, np.full(len(unseen), other)])
    return replace(encoding, source=replace(source, values=codes, levels=np.asarray(levels, dtype=object)),
                   group_of=group_of)
