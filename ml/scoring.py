"""Account scoring: layer models, their learned and calibrated combination, tiers, potential and reasons.

Each layer (fit, engagement, persona) is a regularised logistic regression trained on the train split of
closed opportunities. A second logistic regression, fitted on the calibration split, combines the layer
logits; Platt scaling on out-of-fold combiner scores makes the result a calibrated probability. The test
split is only ever used for evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from itertools import pairwise

import numpy as np
import pandas as pd
import polars as pl
from scipy.optimize import minimize
from scipy.special import expit
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from ml.policy import Policy, ScoringPolicy, TierPolicy

LAYERS = ("fit", "engagement", "persona")
LAYER_PREFIXES = {"fit": "fit_", "engagement": "eng_", "persona": "persona_"}
SPLITS = ("train", "calibration", "test")
TRAIN, CALIBRATION, TEST = range(3)
TIERS = ("A", "B", "C")
OTHER, MISSING = "other", "missing"
# How a top factor's account value is shown.
NUMBER, FLAG, CATEGORY = range(3)

# Below this many closed outcomes three splits cannot each hold both classes: use the base rate.
MIN_CLOSED_TO_FIT = 30
# A time split needs dates on most rows, otherwise the undated rows would decide it.
MIN_DATED_SHARE = 0.8
# An attribute is a number when nearly all its values parse; the few that do not are typos, so missing.
MIN_NUMERIC_SHARE = 0.95
# With little data only the strongest few inputs per layer are kept, so the model cannot chase noise.
LOW_CONFIDENCE_MAX_SOURCES = 3
# Folds for the out-of-fold combiner scores the final Platt scaling is fitted on.
CALIBRATION_FOLDS = 5
TOP_FACTORS_PER_SIDE = 3
# A contribution that rounds to 0.00 explains nothing.
MIN_SHOWN_CONTRIBUTION = 0.005
# A column whose spread on the training rows is this small relative to its level carries no signal.
CONSTANT_TOLERANCE = 1e-9
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

    def grouped(self, pos: np.ndarray) -> np.ndarray:
        return self.group_of[self.source.values[pos] + 1]

    def basis(self, pos: np.ndarray) -> np.ndarray:
        """Unstandardised kept columns for the given account positions."""
        if self.group_of is None:
            x = self.source.values[pos]
            missing = np.isnan(x)
            full = np.column_stack([np.where(missing, self.fill, x), missing])
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
    encodings: tuple[_Encoding, ...]
    coefs: tuple[np.ndarray, ...]
    intercept: float


@dataclass(frozen=True)
class _Combiner:
    """Learned weights on the layer logits, then Platt slope and offset on the combined logit."""

    weights: np.ndarray
    intercept: float
    slope: float
    offset: float

    def logit(self, layer_logits: np.ndarray) -> np.ndarray:
        return self.slope * (layer_logits @ self.weights + self.intercept) + self.offset


@dataclass(frozen=True)
class _Split:
    method: str
    note: str
    labels: np.ndarray | None


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

    @property
    def pos(self) -> np.ndarray:
        return self.closed["pos"].to_numpy()

    @property
    def y(self) -> np.ndarray:
        return self.closed["y"].to_numpy()


# ---------------------------------------------------------------- public pure helpers


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int) -> float:
    """Share-weighted gap between mean prediction and observed rate over equal-width probability bins."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    if len(y) == 0:
        return float("nan")
    bin_of = np.clip((p * bins).astype(int), 0, bins - 1)
    # Per bin, |sum(p) - sum(y)| / N equals its share times |mean p - mean y|.
    gap = np.bincount(bin_of, weights=p - y, minlength=bins)
    return float(np.abs(gap).sum() / len(y))


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
) -> ScoringResult:
    """Score every account in `features` against the closed (won/lost) opportunities in `outcomes`.

    `features` is account_features (account_id, identity columns, fit_* / eng_* / persona_* features);
    technologies, attributes and signals are its long tables and may have no rows. Every account gets a
    row in account_scores, in the order of `features`. The `low_confidence` metric is one row (layer
    combined, split train) with value 1.0 or 0.0. Raises ValueError when account_id is missing or
    duplicated, a feature column holds dates, or a signal has an unknown layer.
    """
    scoring = policy.scoring
    index = _account_index(features)
    closed, unmatched = _closed_outcomes(outcomes, index)
    facts = _facts(closed, unmatched)
    run = _Run(
        features, closed, _expected_deal_value(features, outcomes, index, scoring.deal_value_cap_quantile),
        _low_confidence_reasons(facts, scoring), facts, policy, model_version, scored_at,
    )
    split = _split(closed, scoring)
    if split.labels is None:
        return _base_rate_result(run, split, {})
    train = split.labels == TRAIN
    train_pos, y_train = run.pos[train], run.y[train]
    sources = (
        _feature_sources(features)
        + _technology_sources(technologies, index, np.bincount(train_pos, minlength=len(index)), scoring)
        + _attribute_sources(attributes, index)
        + _signal_sources(signals, index)
    )
    c = scoring.low_confidence_regularization_c if run.reasons else scoring.regularization_c
    max_sources = LOW_CONFIDENCE_MAX_SOURCES if run.reasons else None
    fits, switched_off = _fit_layers(sources, train_pos, y_train, scoring, c, max_sources)
    if not fits:
        return _base_rate_result(run, _Split("none", "no layer has a usable feature", None), switched_off)
    return _model_result(run, split, fits, switched_off, c)


def _model_result(
    run: _Run, split: _Split, fits: dict[str, _LayerFit], switched_off: dict[str, str], c: float
) -> ScoringResult:
    """Calibrate and combine the fitted layers, score every account, evaluate on every split."""
    pos, y, labels = run.pos, run.y, split.labels
    cal = labels == CALIBRATION
    contrib, blocks, logits = _layer_logits(fits, len(run.features))
    layer_probability = _calibrate_layers(logits, pos[cal], y[cal])
    combiner = _fit_combiner(logits[pos[cal]], y[cal], c, run.policy.scoring.random_seed)
    probability = expit(combiner.logit(logits))
    factors = _explain(contrib, blocks, fits, combiner)
    per_layer = dict(zip(fits, layer_probability.T))
    scores = _score_frame(run, {layer: 100.0 * p for layer, p in per_layer.items()}, probability, factors)
    metrics = _metric_frame(run, per_layer | {"combined": probability}, labels)
    test = labels == TEST
    return ScoringResult(
        account_scores=scores,
        metrics=metrics,
        weights=_weight_frame(run, fits, combiner),
        tier_lift=_tier_lift(run, scores["tier"].to_numpy()[pos[test]], y[test]),
        summary=_summary(run, split, labels, switched_off, fits, combiner, metrics),
    )


def _base_rate_result(run: _Run, split: _Split, switched_off: dict[str, str]) -> ScoringResult:
    """No model can be fitted: every account gets the base rate (0.5 without outcomes), low confidence."""
    run = replace(run, reasons=run.reasons or [split.note])
    n = len(run.features)
    probability = np.full(n, run.y.mean() if len(run.y) else 0.5)
    factors = pl.Series(np.full(n, f"no model: {split.note}"), dtype=pl.String)
    scores = _score_frame(run, {}, probability, factors)
    # Every closed row fed the base rate, so they all count as training rows.
    labels = np.full(len(run.y), TRAIN, dtype=np.int8)
    metrics = _metric_frame(run, {"combined": probability}, labels)
    off = {layer: switched_off.get(layer, f"no model: {split.note}") for layer in LAYERS}
    return ScoringResult(
        account_scores=scores,
        metrics=metrics,
        weights=_weight_frame(run, {}, None),
        tier_lift=_tier_lift(run, scores["tier"].to_numpy()[run.pos], run.y),
        summary=_summary(run, split, labels, off, {}, None, metrics),
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
    date = _utc(outcomes["closed_at"]).fillna(_utc(outcomes["created_at"]))
    closed = pd.DataFrame({
        "pos": pos[keep],
        "y": (outcome[keep] == "won").to_numpy(dtype=int),
        "date": date[keep].reset_index(drop=True),
        "opportunity_id": outcomes["opportunity_id"][keep].astype(str).to_numpy(),
    })
    return closed, int((is_closed & (pos < 0)).sum())


def _facts(closed: pd.DataFrame, unmatched: int) -> dict:
    return {
        "closed_outcomes": len(closed),
        "won_outcomes": int(closed["y"].sum()),
        "accounts_with_outcomes": int(closed["pos"].nunique()),
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
            return _Split("time", "latest closed opportunities held out for calibration and test", labels)
        note = "the time split left train or calibration with one outcome class; split at random"
    else:
        note = f"only {dated_share:.0%} of closed opportunities have a date; split at random"
    labels = _random_split(y, scoring)
    if _has_both_classes(labels, y):
        return _Split("random", note, labels)
    return _Split("none", "too few won or lost outcomes to give every split both classes", None)


def _time_split(closed: pd.DataFrame, scoring: ScoringPolicy) -> np.ndarray:
    # Undated rows sort first (NaT is the smallest int64), so they can only ever land in train.
    moment = closed["date"].dt.tz_convert(None).to_numpy().astype("datetime64[ns]").view(np.int64)
    tie_break = pd.factorize(closed["opportunity_id"], sort=True)[0]
    order = np.lexsort((tie_break, moment))
    n = len(order)
    n_test, n_cal = _share(n, scoring.test_share), _share(n, scoring.calibration_share)
    labels = np.full(n, TRAIN, dtype=np.int8)
    labels[order[n - n_test:]] = TEST
    labels[order[n - n_test - n_cal:n - n_test]] = CALIBRATION
    return labels


def _random_split(y: np.ndarray, scoring: ScoringPolicy) -> np.ndarray:
    rng = np.random.default_rng(scoring.random_seed)
    labels = np.full(len(y), TRAIN, dtype=np.int8)
    for cls in (0, 1):
        rows = rng.permutation(np.flatnonzero(y == cls))
        n_test, n_cal = _share(len(rows), scoring.test_share), _share(len(rows), scoring.calibration_share)
        labels[rows[:n_test]] = TEST
        labels[rows[n_test:n_test + n_cal]] = CALIBRATION
    return labels


def _share(n: int, share: float) -> int:
    return max(1, round(n * share))


def _has_both_classes(labels: np.ndarray, y: np.ndarray) -> bool:
    return all(0 < y[labels == part].sum() < (labels == part).sum() for part in (TRAIN, CALIBRATION))


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


def _attribute_sources(attributes: pd.DataFrame, index: pd.Index) -> list[_Source]:
    """Extra account columns as fit inputs: numbers when nearly all values parse, else categories."""
    if attributes.empty:
        return []
    frame = pd.DataFrame({
        "pos": index.get_indexer(attributes["account_id"]),
        "attribute": attributes["attribute"].astype(str).to_numpy(),
        "value": _text(attributes["value"]).array,
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


def _signal_sources(signals: pd.DataFrame, index: pd.Index) -> list[_Source]:
    """One number per (layer, signal); accounts without the signal are missing."""
    if signals.empty:
        return []
    layer = signals["layer"].astype("string").str.strip().str.lower().fillna("<null>")
    unknown = sorted(set(layer.unique()) - set(LAYERS))
    if unknown:
        raise ValueError(
            f"account_signal_features has layer values {unknown}; use one of {list(LAYERS)} for every signal"
        )
    frame = pd.DataFrame({
        "pos": index.get_indexer(signals["account_id"]),
        "layer": layer,
        "signal": signals["signal"].astype(str),
        "value": _finite(pd.to_numeric(signals["value"], errors="coerce").to_numpy(float, na_value=np.nan)),
    })
    frame = frame[frame["pos"] >= 0]
    sources = []
    for (layer_name, signal), group in frame.groupby(["layer", "signal"], sort=True):
        values = np.full(len(index), np.nan)
        values[group["pos"].to_numpy()] = group["value"].to_numpy()
        sources.append(_Source(f"signal:{signal}", _words(signal), str(layer_name), values))
    return sources


# ---------------------------------------------------------------- encoding (fitted on training rows)


def _encode(source: _Source, train_pos: np.ndarray, scoring: ScoringPolicy) -> _Encoding | None:
    """Design columns for a source, or None when it is constant or empty on the training rows."""
    if source.levels is None:
        x = source.values[train_pos]
        if np.isnan(x).all():
            return None
        columns = (source.name, f"{source.name}:missing")
        draft = _Encoding(source, columns, np.ones(2, bool), np.zeros(2), np.ones(2), float(np.nanmedian(x)))
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


def _fit_layers(
    sources: list[_Source],
    train_pos: np.ndarray,
    y_train: np.ndarray,
    scoring: ScoringPolicy,
    c: float,
    max_sources: int | None,
) -> tuple[dict[str, _LayerFit], dict[str, str]]:
    fits, switched_off = {}, {}
    for layer in LAYERS:
        own = [source for source in sources if source.layer == layer]
        encodings = [e for e in (_encode(s, train_pos, scoring) for s in own) if e is not None]
        if not own:
            switched_off[layer] = f"no {LAYER_PREFIXES[layer]}* columns or {layer} signals"
        elif not encodings:
            switched_off[layer] = f"all {len(own)} features are constant or empty on the training rows"
        else:
            fits[layer] = _fit_layer(encodings, train_pos, y_train, c, max_sources)
    return fits, switched_off


def _fit_layer(
    encodings: list[_Encoding], train_pos: np.ndarray, y: np.ndarray, c: float, max_sources: int | None
) -> _LayerFit:
    blocks = [e.design(train_pos) for e in encodings]
    if max_sources is not None and len(encodings) > max_sources:
        chosen = _most_informative(blocks, y, max_sources)
        encodings, blocks = [encodings[i] for i in chosen], [blocks[i] for i in chosen]
    model = LogisticRegression(C=c, max_iter=LBFGS_MAX_ITER).fit(np.hstack(blocks), y)
    coefs = np.split(model.coef_[0], np.cumsum([b.shape[1] for b in blocks])[:-1])
    return _LayerFit(tuple(encodings), tuple(coefs), float(model.intercept_[0]))


def _most_informative(blocks: list[np.ndarray], y: np.ndarray, k: int) -> list[int]:
    """Sources whose best column correlates most with the outcome (columns are already standardised)."""
    centred = y - y.mean()
    strength = [np.abs(block.T @ centred).max() for block in blocks]
    return sorted(np.argsort(strength, kind="stable")[::-1][:k].tolist())


def _layer_logits(fits: dict[str, _LayerFit], n: int) -> tuple[np.ndarray, list[slice], np.ndarray]:
    """Per-account contribution of every source (one column block per layer) and each layer's logit."""
    sizes = [len(fit.encodings) for fit in fits.values()]
    # Column-major, because it is filled one source (column) at a time.
    contrib = np.empty((n, sum(sizes)), dtype=np.float32, order="F")
    starts = np.concatenate([[0], np.cumsum(sizes)])
    blocks = [slice(int(a), int(b)) for a, b in pairwise(starts)]
    logits = np.empty((n, len(fits)))
    for j, (fit, block) in enumerate(zip(fits.values(), blocks)):
        for k, (encoding, coef) in enumerate(zip(fit.encodings, fit.coefs)):
            contrib[:, block.start + k] = encoding.contribution(coef)
        logits[:, j] = fit.intercept + contrib[:, block].sum(axis=1, dtype=float)
    return contrib, blocks, logits


def _calibrate_layers(logits: np.ndarray, cal_pos: np.ndarray, y_cal: np.ndarray) -> np.ndarray:
    """Each layer's logit Platt-scaled on the calibration split: a probability per account and layer."""
    columns = []
    for j in range(logits.shape[1]):
        slope, offset = _fit_platt(logits[cal_pos, j], y_cal)
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


def _fit_combiner(layer_logits: np.ndarray, y: np.ndarray, c: float, seed: int) -> _Combiner:
    """Logistic weights on the layer logits, Platt-scaled on out-of-fold combiner scores."""
    model = LogisticRegression(C=c, max_iter=LBFGS_MAX_ITER).fit(layer_logits, y)
    slope, offset = _fit_platt(_out_of_fold_logits(layer_logits, y, c, seed), y)
    return _Combiner(model.coef_[0].copy(), float(model.intercept_[0]), slope, offset)


def _out_of_fold_logits(x: np.ndarray, y: np.ndarray, c: float, seed: int) -> np.ndarray:
    """Combiner logits for each calibration row from a model that did not see that row."""
    folds = min(CALIBRATION_FOLDS, int(min(y.sum(), len(y) - y.sum())))
    if folds < 2:
        return LogisticRegression(C=c, max_iter=LBFGS_MAX_ITER).fit(x, y).decision_function(x)
    logits = np.empty(len(y))
    for fit_rows, held_rows in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        model = LogisticRegression(C=c, max_iter=LBFGS_MAX_ITER).fit(x[fit_rows], y[fit_rows])
        logits[held_rows] = model.decision_function(x[held_rows])
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
    frame = pd.DataFrame({
        "account_id": run.features["account_id"].to_numpy(),
        **{f"{layer}_score": layer_scores.get(layer, np.full(n, np.nan)) for layer in LAYERS},
        "conversion_probability": probability,
        "priority_score": priority,
        "tier": pd.array(assign_tiers(priority, run.policy.tiers), dtype="str"),
        "top_factors": pd.array(factors.to_arrow(), dtype="str"),
        "expected_deal_value": run.deal_value,
        "potential": probability * run.deal_value,
        "low_confidence": np.full(n, bool(run.reasons)),
        "model_version": run.model_version,
        "scored_at": pd.Timestamp(run.scored_at),
    })
    return frame[list(SCORE_COLUMNS)]


def _metric_frame(run: _Run, probabilities: dict[str, np.ndarray], labels: np.ndarray) -> pd.DataFrame:
    """Metrics of each layer's and the combined probability on every split, plus the low-confidence flag."""
    pos, y, bins = run.pos, run.y, run.policy.scoring.ece_bins
    records = [
        (run.model_version, layer, split, metric, value)
        for layer, probability in probabilities.items()
        for code, split in enumerate(SPLITS)
        for metric, value in binary_metrics(y[labels == code], probability[pos[labels == code]], bins).items()
    ]
    records.append((run.model_version, "combined", "train", "low_confidence", float(bool(run.reasons))))
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


def _summary(
    run: _Run,
    split: _Split,
    labels: np.ndarray,
    switched_off: dict[str, str],
    fits: dict[str, _LayerFit],
    combiner: _Combiner | None,
    metrics: pd.DataFrame,
) -> dict:
    test = metrics[(metrics["layer"] == "combined") & (metrics["split"] == "test")]
    test_value = {metric: float(value) for metric, value in zip(test["metric"], test["value"])}
    counts = np.bincount(labels, minlength=len(SPLITS))
    return {
        "model_version": run.model_version,
        "active_layers": list(fits),
        "switched_off_layers": switched_off,
        "features_per_layer": {layer: len(fit.encodings) for layer, fit in fits.items()},
        "combiner_weights": dict(zip(fits, combiner.weights.tolist())) if combiner else {},
        "split_method": split.method,
        "split_note": split.note,
        "n": {name: int(count) for name, count in zip(SPLITS, counts)},
        "tier_lift_rows": "test split" if fits else "all closed outcomes (no model, no held-out split)",
        "test_auc": test_value.get("auc"),
        "test_brier": test_value.get("brier"),
        "test_ece": test_value.get("ece"),
        "low_confidence": bool(run.reasons),
        "low_confidence_reasons": run.reasons,
        **run.facts,
    }
