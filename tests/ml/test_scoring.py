"""Tests for ml.scoring on synthetic accounts with a known logistic truth, and on the Maven CRM export."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from ml.policy import Policy, TierPolicy
from ml.scoring import (
    ScoringResult,
    assign_tiers,
    ece_noise_floor,
    expected_calibration_error,
    percentile_rank,
    reliability_table,
    score_accounts,
)

MAVEN = Path(__file__).resolve().parents[3] / "shared" / "data" / "maven_crm"
SCORED_AT = datetime(2025, 1, 1)
INDUSTRY_EFFECT = {"software": 0.8, "retail": -0.6, "health": 0.0, "finance": 0.2}


def no_technologies() -> pd.DataFrame:
    return pd.DataFrame({"account_id": pd.Series([], dtype="str"), "technology": pd.Series([], dtype="str")})


def no_attributes() -> pd.DataFrame:
    return pd.DataFrame(columns=["account_id", "attribute", "value"])


def no_signals() -> pd.DataFrame:
    return pd.DataFrame(columns=["account_id", "layer", "signal", "value"])


def synthetic(
    n: int = 4000, rows_per_account: int = 3, seed: int = 0, extra_logit: np.ndarray | None = None
) -> tuple[dict, np.ndarray]:
    """Accounts whose win probability follows a known logistic model over fit, engagement and industry."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"A{i:05d}" for i in range(n)])
    employees = rng.normal(size=n)
    growth = rng.normal(size=n)
    views = rng.poisson(5, n).astype(float)
    industry = rng.choice(list(INDUSTRY_EFFECT), n)
    truth_logit = -0.3 + 1.0 * employees - 0.8 * growth + 0.5 * (views - 5)
    if extra_logit is not None:
        truth_logit = truth_logit + extra_logit
    truth = 1 / (1 + np.exp(-(truth_logit + pd.Series(industry).map(INDUSTRY_EFFECT).to_numpy())))
    features = pd.DataFrame({
        "account_id": ids, "account_name": ids, "industry": industry, "fit_employees": employees,
        "fit_growth": growth, "fit_industry": industry, "eng_pricing_page_views_30d": views,
    })
    account = np.repeat(np.arange(n), rows_per_account)
    won = rng.random(len(account)) < truth[account]
    created = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, len(account)), "D")
    outcomes = pd.DataFrame({
        "opportunity_id": [f"O{i:06d}" for i in range(len(account))],
        "account_id": ids[account],
        "outcome": np.where(won, "won", "lost"),
        "created_at": created,
        "closed_at": created + pd.to_timedelta(rng.integers(1, 90, len(account)), "D"),
        "amount": np.round(rng.lognormal(9, 1, len(account)), 2),
    })
    inputs = {
        "features": features, "outcomes": outcomes, "technologies": no_technologies(),
        "attributes": no_attributes(), "signals": no_signals(),
    }
    return inputs, truth


def run(inputs: dict, policy: Policy | None = None) -> ScoringResult:
    return score_accounts(
        inputs["features"], inputs["outcomes"], inputs["technologies"], inputs["attributes"],
        inputs["signals"], policy or Policy(), "test-v1", SCORED_AT,
    )


def metric(result: ScoringResult, layer: str, split: str, name: str) -> float:
    m = result.metrics
    rows = m[(m["layer"] == layer) & (m["split"] == split) & (m["metric"] == name)]
    assert len(rows) == 1, f"expected one {layer}/{split}/{name} metric, got {len(rows)}"
    return float(rows["value"].iloc[0])


def weight(result: ScoringResult, layer: str, feature: str) -> float:
    w = result.weights
    return float(w.loc[(w["layer"] == layer) & (w["feature"] == feature), "weight"].item())


@pytest.fixture(scope="module")
def known_truth() -> tuple[dict, np.ndarray, ScoringResult]:
    inputs, truth = synthetic()
    return inputs, truth, run(inputs)


def test_probabilities_rank_like_the_truth_and_are_calibrated(known_truth):
    _, truth, result = known_truth
    scores = result.account_scores
    assert spearmanr(scores["conversion_probability"], truth).statistic >= 0.9
    assert metric(result, "combined", "test", "ece") <= 0.05
    assert metric(result, "combined", "test", "auc") > 0.75
    assert scores["conversion_probability"].between(0, 1).all()
    assert result.summary["split_method"] == "time"
    assert result.summary["low_confidence"] is False
    assert metric(result, "combined", "train", "low_confidence") == 0.0
    assert not scores["low_confidence"].any()
    assert (scores["model_version"] == "test-v1").all() and (scores["scored_at"] == SCORED_AT).all()
    assert list(scores.columns) == [
        "account_id", "fit_score", "engagement_score", "persona_score", "conversion_probability",
        "priority_score", "tier", "top_factors", "expected_deal_value", "potential", "low_confidence",
        "model_version", "scored_at",
    ]


def test_recovered_weights_have_the_signs_of_the_truth(known_truth):
    _, _, result = known_truth
    assert weight(result, "fit", "fit_employees") > 0
    assert weight(result, "fit", "fit_growth") < 0
    assert weight(result, "engagement", "eng_pricing_page_views_30d") > 0
    assert weight(result, "fit", "fit_industry=software") > weight(result, "fit", "fit_industry=retail")
    assert weight(result, "combined", "fit") > 0
    assert weight(result, "combined", "engagement") > 0
    assert result.summary["active_layers"] == ["fit", "engagement"]
    assert "persona" in result.summary["switched_off_layers"]
    assert result.account_scores["persona_score"].isna().all()


def test_metrics_cover_every_active_layer_and_split(known_truth):
    _, _, result = known_truth
    n = {split: metric(result, "combined", split, "n") for split in ("train", "test")}
    assert n == {"train": 9600.0, "test": 2400.0}
    assert "calibration" not in set(result.metrics["split"])
    assert set(result.metrics["layer"]) == {"fit", "engagement", "combined", "tiers"}
    for layer in ("fit", "engagement"):
        assert 0.6 < metric(result, layer, "test", "auc") < metric(result, "combined", "test", "auc")


def test_tiers_follow_priority_cutoffs_and_lift_is_monotone(known_truth):
    _, _, result = known_truth
    scores = result.account_scores
    priority = scores["priority_score"]
    expected = np.where(priority >= 85, "A", np.where(priority >= 50, "B", "C"))
    assert (scores["tier"].to_numpy() == expected).all()
    assert abs((scores["tier"] == "A").mean() - 0.15) < 0.01
    lift = result.tier_lift.set_index("tier")
    assert lift["n"].sum() == 2400
    rate = lift["conversion_rate"]
    assert rate["A"] > rate["B"] > rate["C"]
    assert np.allclose(lift["won"] / lift["n"], lift["conversion_rate"])


def test_potential_is_probability_times_own_or_industry_median_won_amount(known_truth):
    inputs, _, result = known_truth
    outcomes, features = inputs["outcomes"], inputs["features"]
    scores = result.account_scores.set_index("account_id")
    won = outcomes[outcomes["outcome"] == "won"]
    own = won.groupby("account_id")["amount"].median()
    with_won = own.index[0]
    assert scores.loc[with_won, "expected_deal_value"] == pytest.approx(own.iloc[0])
    never_won = min(set(features["account_id"]) - set(own.index))
    industry = features.set_index("account_id").loc[never_won, "industry"]
    industry_won = won[won["account_id"].map(features.set_index("account_id")["industry"]) == industry]
    assert scores.loc[never_won, "expected_deal_value"] == pytest.approx(industry_won["amount"].median())
    assert np.allclose(scores["potential"], scores["conversion_probability"] * scores["expected_deal_value"])


def test_top_factors_name_real_features_with_the_right_sign(known_truth):
    inputs, _, result = known_truth
    features = inputs["features"].set_index("account_id")
    scores = result.account_scores.set_index("account_id")
    # A software account with few employees and the most page views: views and industry push up,
    # employees pulls down.
    candidates = features[(features["industry"] == "software") & (features["fit_employees"] < -0.5)]
    account = candidates["eng_pricing_page_views_30d"].idxmax()
    up, down = scores.loc[account, "top_factors"].split(" | ")
    views = int(features.loc[account, "eng_pricing_page_views_30d"])
    assert re.search(rf"\+ pricing page views 30d: {views} \(\+\d+\.\d\d\)", up)
    assert re.search(r"\+ industry: software \(\+\d+\.\d\d\)", up)
    shown = re.search(r"- employees: (-\d+\.\d\d) \(-\d+\.\d\d\)", down)
    assert shown and float(shown.group(1)) == pytest.approx(features.loc[account, "fit_employees"], abs=0.006)
    # Within each side the amounts run from strongest to weakest.
    amounts = [float(a) for a in re.findall(r"\(\+(\d+\.\d\d)\)", up)]
    assert amounts == sorted(amounts, reverse=True) and 2 <= len(amounts) <= 3


def test_held_out_outcomes_never_reach_the_models():
    inputs, _ = synthetic(n=1500, rows_per_account=2, seed=3)
    base = run(inputs)
    outcomes = inputs["outcomes"]
    cutoff = outcomes["closed_at"].sort_values().iloc[int(len(outcomes) * 0.8)]
    opposite = np.where(outcomes["outcome"] == "won", "lost", "won")
    flipped = outcomes.assign(outcome=np.where(outcomes["closed_at"] > cutoff, opposite, outcomes["outcome"]))
    changed = run({**inputs, "outcomes": flipped})
    assert np.allclose(base.weights["weight"], changed.weights["weight"])
    assert np.allclose(base.account_scores["conversion_probability"],
                       changed.account_scores["conversion_probability"])
    assert metric(base, "combined", "test", "base_rate") != metric(changed, "combined", "test", "base_rate")


def test_each_back_test_window_is_predicted_from_earlier_outcomes_only():
    inputs, _ = synthetic(n=1500, rows_per_account=2, seed=3)
    base = run(inputs)
    outcomes = inputs["outcomes"]
    ordered = outcomes.sort_values(["closed_at", "opportunity_id"])
    # Flip every outcome of the window just before the test split (the 60-80% band in time).
    band = ordered.index[3 * len(outcomes) // 5: 4 * len(outcomes) // 5]
    flipped = outcomes.copy()
    flipped.loc[band, "outcome"] = np.where(outcomes.loc[band, "outcome"] == "won", "lost", "won")
    changed = run({**inputs, "outcomes": flipped})
    windows = dict(list(base.pooled.groupby("window")))
    changed_windows = dict(list(changed.pooled.groupby("window")))
    assert sorted(windows) == [0, 1, 2] and all(len(frame) == 600 for frame in windows.values())
    # Windows 1 and 2 were predicted by models fitted and chosen (C, penalty, calibration) before the band: same
    # predictions, only window 1's outcomes differ. The test split's model (the run's) learned from the band.
    for k in (1, 2):
        assert np.allclose(windows[k]["probability"], changed_windows[k]["probability"])
    assert (windows[1]["won"].to_numpy() != changed_windows[1]["won"].to_numpy()).all()
    assert not np.allclose(windows[0]["probability"], changed_windows[0]["probability"])
    assert metric(base, "combined", "back_test", "n") == 1800


def test_pooled_held_out_predictions_stop_once_they_have_enough_rows():
    inputs, _ = synthetic(n=1500, rows_per_account=2, seed=3)
    enough = Policy.model_validate({"scoring": {"pooled_enough_rows": 1000}})
    # 600 test rows are not enough; with the window before them (1,200) they are.
    result = run(inputs, enough)
    assert metric(result, "combined", "back_test", "windows") == 2 and metric(result, "combined", "back_test", "n") == 1200
    assert sorted(result.pooled["window"].unique()) == [0, 1]
    # Undated outcomes whose test split alone is enough are not refitted fold by fold.
    undated = inputs["outcomes"].assign(closed_at=pd.NaT, created_at=pd.NaT)
    result = run({**inputs, "outcomes": undated}, Policy.model_validate({"scoring": {"pooled_enough_rows": 600}}))
    assert result.summary["split_method"] == "random" and result.pooled is None
    assert not set(result.metrics["split"]) & {"cross_validated", "back_test"}


def drifting(outcomes: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    """The outcomes with a climbing base rate: a lost deal turns won with a chance growing toward the latest date."""
    rng = np.random.default_rng(seed)
    closed = outcomes["closed_at"]
    elapsed = ((closed - closed.min()) / (closed.max() - closed.min())).to_numpy()
    turned = (outcomes["outcome"] == "lost").to_numpy() & (rng.random(len(outcomes)) < 0.5 * elapsed**2)
    return outcomes.assign(outcome=np.where(turned, "won", outcomes["outcome"]))


def test_calibration_follows_a_base_rate_that_drifts_and_the_kept_model_keeps_the_shift():
    from ml.scoring import score_with_model

    inputs, _ = synthetic(n=3000, rows_per_account=2, seed=9)
    drifted = {**inputs, "outcomes": drifting(inputs["outcomes"])}
    recalibrated = run(drifted)
    fixed = run(drifted, Policy.model_validate({"scoring": {"recalibration_min_z": 1e6}}))
    shift = metric(recalibrated, "combined", "train", "recent_logit_shift")
    assert shift > 0.2 and metric(fixed, "combined", "train", "recent_logit_shift") == 0.0
    assert metric(recalibrated, "combined", "train", "recent_shift_half_life_days") in \
        Policy().scoring.calibration_half_lives_days
    assert recalibrated.summary["recalibration"].startswith(f"shifted +{shift:.2f} on the logit scale")
    # The shift moves every probability alike on the logit scale: same ranking, better calibrated later period.
    assert metric(recalibrated, "combined", "test", "auc") == pytest.approx(metric(fixed, "combined", "test", "auc"))
    assert metric(recalibrated, "combined", "test", "ece") < metric(fixed, "combined", "test", "ece") - 0.03
    test_rate = metric(recalibrated, "combined", "test", "base_rate")
    predicted = {name: result.pooled.loc[result.pooled["window"] == 0, "probability"].mean()
                 for name, result in (("recalibrated", recalibrated), ("fixed", fixed))}
    assert abs(predicted["recalibrated"] - test_rate) < abs(predicted["fixed"] - test_rate) / 2
    kept = score_with_model(drifted["features"], drifted["outcomes"], no_technologies(), no_attributes(),
                            no_signals(), Policy(), recalibrated.model, SCORED_AT, "test")
    np.testing.assert_allclose(kept.account_scores["conversion_probability"],
                               recalibrated.account_scores["conversion_probability"], atol=1e-9)


def test_recent_shift_stops_at_its_bound_when_recent_outcomes_are_all_one_class():
    from ml.scoring import MAX_LOGIT_SHIFT, _weighted_shift

    p = np.full(200, 0.3)
    ages = np.arange(200.0)
    assert _weighted_shift(p, np.ones(200), ages, 30.0, Policy().scoring) == MAX_LOGIT_SHIFT
    assert _weighted_shift(p, np.zeros(200), ages, 30.0, Policy().scoring) == -MAX_LOGIT_SHIFT
    # Outcomes that convert at the predicted rate need no shift.
    assert _weighted_shift(p, (np.arange(200) % 10 < 3).astype(float), ages, 30.0, Policy().scoring) == 0.0


def test_warm_started_c_path_and_rank_auc_match_their_direct_computations():
    from sklearn.metrics import roc_auc_score

    from ml.scoring import _cv_log_loss, _cv_path_log_loss, _folds, _logistic

    rng = np.random.default_rng(4)
    x = rng.normal(size=(600, 4))
    y = (rng.random(600) < 1 / (1 + np.exp(-(x @ [1.0, -0.5, 0.2, 0.0])))).astype(int)
    folds = _folds(y, Policy().scoring, 3)
    grid = [0.01, 0.1, 1.0]
    path = _cv_path_log_loss("l2", grid, x, y, folds, 0)
    for c in grid:
        assert path[c] == pytest.approx(_cv_log_loss(lambda c=c: _logistic(c), x, y, folds), rel=1e-4)
    # The leak screen's rank AUC (ties counted half) is roc_auc_score's, in the better direction.
    ties = np.round(x[:, 0])
    assert _rank_auc(ties, y) == pytest.approx(max(roc_auc_score(y, ties), 1 - roc_auc_score(y, ties)))


def _rank_auc(column: np.ndarray, y: np.ndarray) -> float:
    from ml.scoring import _Encoding, _single_source_auc, _Source

    source = _Source("x", "x", "fit", column)
    one = np.ones(1)
    encoding = _Encoding(source, ("x",), np.array([True, False]), np.zeros(1), one, fill=0.0)
    return _single_source_auc(encoding, np.arange(len(column)), y)


def test_an_l1_model_scores_the_same_inputs_identically():
    inputs, _ = synthetic(n=1500, rows_per_account=2, seed=3)
    # liblinear, the L1 solver, visits coordinates in random order unless seeded.
    policy = Policy.model_validate({"scoring": {"penalties": ["l1"]}})
    first, second = (run(inputs, policy) for _ in range(2))
    assert first.summary["layer_models"]["fit"] == "logistic regression"
    assert metric(first, "fit", "train", "l1_penalty") == 1.0
    assert first.account_scores["conversion_probability"].equals(second.account_scores["conversion_probability"])


def test_time_split_puts_the_latest_closed_rows_in_test():
    inputs, _ = synthetic(n=1000, rows_per_account=2, seed=5)
    outcomes = inputs["outcomes"].copy()
    # Some rows only have a creation date: they are ordered by it instead.
    outcomes.loc[outcomes.index[:100], "closed_at"] = pd.NaT
    result = run({**inputs, "outcomes": outcomes})
    ordered = outcomes.assign(date=outcomes["closed_at"].fillna(outcomes["created_at"]))
    ordered = ordered.sort_values(["date", "opportunity_id"])
    won = (ordered["outcome"] == "won").to_numpy()
    assert result.summary["split_method"] == "time"
    assert metric(result, "combined", "test", "base_rate") == pytest.approx(won[-400:].mean())
    assert metric(result, "combined", "train", "base_rate") == pytest.approx(won[:-400].mean())
    assert metric(result, "combined", "train", "n") == 1600
    assert metric(result, "combined", "test", "base_rate_ratio_to_train") == pytest.approx(won[-400:].mean() / won[:-400].mean())


def test_outcomes_with_close_dates_on_wins_only_are_ordered_by_creation_date():
    inputs, _ = synthetic(n=1000, rows_per_account=2, seed=5)
    outcomes = inputs["outcomes"].copy()
    # Wins close up to 200 days after they came in, losses carry no close date (a funnel export): by close-else-
    # created dates the latest window would be wins alone.
    won = outcomes["outcome"] == "won"
    outcomes["closed_at"] = (outcomes["created_at"] + pd.Timedelta(days=200)).where(won)
    result = run({**inputs, "outcomes": outcomes})
    latest = outcomes.sort_values(["created_at", "opportunity_id"]).tail(400)
    assert result.summary["split_method"] == "time"
    assert "ordered by creation date" in result.summary["split_note"]
    assert result.summary["evaluation"] == "held-out test (400 closed outcomes, latest by creation date)"
    assert metric(result, "combined", "train", "closed_outcomes") == 2000
    assert metric(result, "combined", "test", "base_rate") == pytest.approx((latest["outcome"] == "won").mean())
    assert 0.2 < metric(result, "combined", "test", "base_rate") < 0.8
    # Both classes dated alike (losses closing too) keep the close-else-created order.
    both = outcomes.assign(closed_at=outcomes["created_at"] + pd.Timedelta(days=200))
    assert "creation date" not in run({**inputs, "outcomes": both}).summary["split_note"]


def test_mostly_undated_outcomes_use_a_stratified_random_split():
    inputs, _ = synthetic(n=1000, rows_per_account=2, seed=6)
    outcomes = inputs["outcomes"].assign(closed_at=pd.NaT)
    outcomes.loc[outcomes.index[: len(outcomes) // 2], "created_at"] = pd.NaT
    result = run({**inputs, "outcomes": outcomes})
    assert result.summary["split_method"] == "random"
    overall = (outcomes["outcome"] == "won").mean()
    for split in ("train", "test"):
        assert abs(metric(result, "combined", split, "base_rate") - overall) < 0.003
    again = run({**inputs, "outcomes": outcomes})
    probability = result.account_scores["conversion_probability"]
    assert again.account_scores["conversion_probability"].equals(probability)


def test_attributes_and_technologies_become_fit_features():
    rng = np.random.default_rng(7)
    n = 2000
    # Using "crm_suite" raises the odds; "rare_tool" is on too few accounts to stand alone.
    uses_crm = rng.random(n) < 0.5
    inputs, _ = synthetic(n=n, rows_per_account=2, seed=7, extra_logit=1.0 * uses_crm)
    ids = inputs["features"]["account_id"].to_numpy()
    founded = rng.integers(1950, 2020, n).astype(str).astype(object)
    founded[:50] = "n/a"
    attributes = pd.concat([
        pd.DataFrame({"account_id": ids, "attribute": "year_founded", "value": founded}),
        pd.DataFrame({"account_id": ids, "attribute": "segment", "value": rng.choice(["smb", "mid"], n)}),
    ])
    technologies = pd.DataFrame({
        "account_id": np.concatenate([ids[uses_crm], ids[:3]]),
        "technology": ["crm_suite"] * int(uses_crm.sum()) + ["rare_tool"] * 3,
    })
    result = run({**inputs, "attributes": attributes, "technologies": technologies})
    fit_features = set(result.weights.loc[result.weights["layer"] == "fit", "feature"])
    assert {"attribute:year_founded", "attribute:year_founded:missing"} <= fit_features
    assert {"attribute:segment=smb", "attribute:segment=mid"} <= fit_features
    assert "technology:rare_tool" not in fit_features and "technology:other" in fit_features
    assert weight(result, "fit", "technology:crm_suite") > 0
    factors = result.account_scores["top_factors"]
    assert factors.str.contains(r"\+ uses crm_suite: yes \(\+", regex=True).sum() > 100
    assert not factors.str.contains(r"- uses crm_suite: yes", regex=False).any()


def test_a_high_cardinality_category_keeps_its_frequent_levels_and_pools_the_rest():
    rng = np.random.default_rng(12)
    n = 3000
    # 500 landing pages with Zipf-like traffic: a few carry most accounts, hundreds are seen once or twice.
    pages = np.array([f"page_{k:03d}" for k in range(500)])
    traffic = 1 / np.arange(1, 501) ** 1.1
    page = rng.choice(pages, n, p=traffic / traffic.sum())
    inputs, _ = synthetic(n=n, rows_per_account=2, seed=12, extra_logit=1.5 * (page == "page_001"))
    attributes = pd.DataFrame({"account_id": inputs["features"]["account_id"], "attribute": "landing_page",
                               "value": page})
    result = run({**inputs, "attributes": attributes})
    scoring = Policy().scoring
    columns = result.weights.loc[result.weights["feature"].str.startswith("attribute:landing_page="), "feature"]
    levels = {c.removeprefix("attribute:landing_page=") for c in columns}
    assert len(levels) <= scoring.max_categories_per_feature and "other" in levels
    # Two rows per account: a page on fewer than half the minimum of accounts cannot have its own level.
    accounts = pd.Series(page).value_counts()
    assert (accounts[sorted(levels - {"other"})] >= scoring.min_category_rows / 2).all()
    effects = {level: weight(result, "fit", f"attribute:landing_page={level}") for level in levels}
    assert max(effects, key=effects.get) == "page_001"


def test_signals_feed_their_layer_and_unknown_layers_are_rejected():
    inputs, _ = synthetic(n=1500, rows_per_account=2, seed=8)
    ids = inputs["features"]["account_id"]
    views = inputs["features"]["eng_pricing_page_views_30d"]
    signals = pd.DataFrame(
        {"account_id": ids, "layer": "engagement", "signal": "intent_surge", "value": views * 2}
    )
    result = run({**inputs, "signals": signals})
    engagement = result.weights[result.weights["layer"] == "engagement"]
    assert "signal:intent_surge" in set(engagement["feature"])
    with pytest.raises(ValueError, match="layer values \\['intent'\\]"):
        run({**inputs, "signals": signals.assign(layer="intent")})


def test_constant_engagement_layer_is_switched_off_with_null_scores():
    inputs, truth = synthetic(n=2000, rows_per_account=2, seed=9)
    features = inputs["features"].assign(eng_pricing_page_views_30d=4.0, eng_webinars=0)
    result = run({**inputs, "features": features})
    assert result.summary["active_layers"] == ["fit"]
    assert "constant" in result.summary["switched_off_layers"]["engagement"]
    assert result.account_scores["engagement_score"].isna().all()
    assert result.account_scores["fit_score"].notna().all()
    assert "engagement" not in set(result.weights["layer"])
    assert spearmanr(result.account_scores["conversion_probability"], truth).statistic > 0.5


def maven_like(seed: int = 11) -> dict:
    """85 accounts with about 80 closed opportunities each and a 63% win rate, like the Maven CRM export."""
    rng = np.random.default_rng(seed)
    n = 85
    ids = np.array([f"M{i:02d}" for i in range(n)])
    features = pd.DataFrame({
        "account_id": ids, "industry": rng.choice(["retail", "medical", "software"], n),
        **{f"fit_x{j}": rng.normal(size=n) for j in range(6)},
        "fit_sector": rng.choice(["retail", "medical", "software", "finance"], n),
    })
    account = rng.integers(0, n, 6700)
    created = pd.Timestamp("2017-01-01") + pd.to_timedelta(rng.integers(0, 365, len(account)), "D")
    outcomes = pd.DataFrame({
        "opportunity_id": [f"P{i:05d}" for i in range(len(account))], "account_id": ids[account],
        "outcome": np.where(rng.random(len(account)) < 0.63, "won", "lost"), "created_at": created,
        "closed_at": created + pd.Timedelta(days=40), "amount": rng.integers(50, 5000, len(account)),
    })
    return {"features": features, "outcomes": outcomes, "technologies": no_technologies(),
            "attributes": no_attributes(), "signals": no_signals()}


def test_below_the_outcome_minimums_no_model_is_trained_and_the_prior_weights_score():
    inputs = maven_like()
    policy = Policy.model_validate({"scoring": {"prior_weights": {"fit_x0": 1.0}}})
    result = run(inputs, policy)
    assert result.summary["low_confidence"] is True
    assert any("85 accounts with outcomes" in reason for reason in result.summary["low_confidence_reasons"])
    assert "policy prior weights on 1 features" in result.summary["kept_model"]
    assert metric(result, "combined", "train", "low_confidence") == 1.0
    assert result.account_scores["low_confidence"].all()
    assert weight(result, "fit", "fit_x0") == 1.0 and result.summary["features"] == ["fit_x0"]
    # Prior weight 1 per standard deviation around the observed base rate: higher x0, higher probability.
    scores = result.account_scores.assign(x0=inputs["features"]["fit_x0"])
    assert spearmanr(scores["conversion_probability"], scores["x0"]).statistic == pytest.approx(1.0)
    assert abs(scores["conversion_probability"].mean() - 0.63) < 0.1
    # The intercept is these outcomes' base rate, so every metric of this path is in-sample, and says so.
    n = len(inputs["outcomes"])
    assert metric(result, "combined", "in_sample", "n") == n
    assert metric(result, "combined", "in_sample", "prior_weights") == 1.0
    assert metric(result, "combined", "in_sample", "ece_bins") == 10
    assert metric(result, "combined", "test", "n") == 0
    assert result.summary["n"] == {"train": 0, "test": 0, "in_sample": n}
    assert result.summary["evaluation"] == f"in-sample, prior weights (all {n} closed outcomes; nothing held out)"
    assert result.summary["test_auc"] == metric(result, "combined", "in_sample", "auc")


def test_below_the_outcome_minimums_the_champion_keeps_scoring():
    trained = run(synthetic(n=1500, rows_per_account=2, seed=21)[0])
    few, _ = synthetic(n=1500, rows_per_account=2, seed=22)
    few["outcomes"] = few["outcomes"].iloc[:150]
    result = score_accounts(few["features"], few["outcomes"], few["technologies"], few["attributes"],
                            few["signals"], Policy(), "test-v2", SCORED_AT, champion=trained.model)
    assert result.summary["low_confidence"] is True and result.account_scores["low_confidence"].all()
    assert result.summary["kept_model"].startswith("champion test-v1")
    assert (result.account_scores["model_version"] == "test-v1").all()
    again = score_accounts(few["features"], few["outcomes"].iloc[:0], few["technologies"], few["attributes"],
                           few["signals"], Policy(), "test-v3", SCORED_AT, champion=trained.model)
    # No outcomes at all: nothing to evaluate on, so even odds, not the champion.
    assert (again.account_scores["conversion_probability"] == 0.5).all()
    # The champion's own weights score the new accounts, evaluated on all 150 closed rows, which it may have
    # trained on: in-sample, not held out.
    assert metric(result, "combined", "in_sample", "n") == 150
    assert metric(result, "combined", "test", "n") == 0
    assert metric(result, "combined", "in_sample", "prior_weights") == 0.0
    assert result.summary["evaluation"] == "in-sample, champion (all 150 closed outcomes; nothing held out)"
    assert result.tier_lift["n"].sum() == 150
    assert result.account_scores["top_factors"].str.contains("employees").any()


def test_a_feature_filled_in_after_the_outcome_is_excluded_as_leaking():
    inputs, _ = synthetic(n=1500, rows_per_account=1, seed=23)
    won = inputs["outcomes"].groupby("account_id")["outcome"].agg(lambda o: (o == "won").any())
    # A CRM tag sales sets when a deal closes: it gives the outcome away on every closed account.
    tag = inputs["features"]["account_id"].map(won).map({True: "closed - customer", False: "lost - no budget"})
    features = inputs["features"].assign(fit_status_tag=tag)
    result = run({**inputs, "features": features})
    assert result.summary["excluded_as_leaking"] == ["fit_status_tag"]
    assert not result.weights["feature"].str.startswith("fit_status_tag").any()
    assert not result.account_scores["top_factors"].str.contains("status tag").any()
    assert metric(result, "combined", "test", "auc") < 0.9


def test_layer_model_choice_and_calibration_choice_are_recorded(known_truth):
    _, _, result = known_truth
    for layer in ("fit", "engagement"):
        logistic = metric(result, layer, "train", "cv_log_loss_logistic")
        boosting = metric(result, layer, "train", "cv_log_loss_boosting")
        chosen = metric(result, layer, "train", "boosting_chosen")
        assert chosen == float(boosting < logistic * 0.99)
        assert metric(result, layer, "train", "regularization_c") in Policy().scoring.regularization_grid
        assert metric(result, layer, "train", "l1_penalty") in (0.0, 1.0)
    # The truth is logistic, so logistic regression is kept.
    assert result.summary["layer_models"] == {"fit": "logistic regression", "engagement": "logistic regression"}
    assert metric(result, "combined", "train", "isotonic_chosen") in (0.0, 1.0)
    # A steady base rate keeps the calibration as fitted.
    assert metric(result, "combined", "train", "recent_logit_shift") == 0.0
    assert np.isnan(metric(result, "combined", "train", "recent_shift_half_life_days"))
    assert metric(result, "combined", "test", "ece_bins") == 10
    # Dated outcomes: the back-test pools three out-of-time windows the size of the test split, so sampling
    # noise alone gives the test split the larger ECE.
    assert "cross_validated" not in set(result.metrics["split"])
    assert metric(result, "combined", "back_test", "windows") == 3
    assert metric(result, "combined", "back_test", "n") == 3 * 2400
    assert metric(result, "combined", "test", "ece_noise_floor") > metric(result, "combined", "back_test",
                                                                          "ece_noise_floor") > 0
    assert result.pooled["window"].value_counts().to_dict() == {0: 2400, 1: 2400, 2: 2400}
    assert result.summary["evaluation"] == "held-out test (2400 closed outcomes, latest by close date)"
    assert "in_sample" not in set(result.metrics["split"]) and "in_sample" not in result.summary["n"]


def test_the_a_tier_is_cut_to_capacity_and_the_probability_floor():
    inputs, _ = synthetic(n=2000, rows_per_account=2, seed=24)
    capped = score_accounts(inputs["features"], inputs["outcomes"], inputs["technologies"], inputs["attributes"],
                            inputs["signals"], Policy(), "cap", SCORED_AT, a_capacity=100)
    scores = capped.account_scores
    a = scores[scores["tier"] == "A"]
    # A territory may hold 5% (the A-count tolerance) more than its share of A accounts, so the A tier fills
    # 100 / 1.05 of the capacity: a plan balanced within the tolerance then overloads no rep.
    assert len(a) == 95 and metric(capped, "tiers", "all", "a_count") == 95
    assert metric(capped, "tiers", "all", "a_capacity") == 100
    assert metric(capped, "tiers", "all", "a_capacity_limit") == 95
    assert metric(capped, "tiers", "all", "a_balance_tolerance") == 0.05
    assert metric(capped, "tiers", "all", "a_bound_by_capacity") == 1.0
    assert a["conversion_probability"].min() >= scores.loc[scores["tier"] != "A", "conversion_probability"].max()
    assert "bound by the AE capacity" in capped.summary["a_tier_cutoff"]
    assert "95 = 100 A accounts the owner reps can work / (1 + the 5% A-count balance tolerance)" in \
        capped.summary["a_tier_cutoff"]
    # A wider A-count tolerance leaves less of the capacity to fill: 100 / 1.25.
    wide = Policy.model_validate({"territories": {"tolerances": {"a_count": 0.25}}})
    loose = score_accounts(inputs["features"], inputs["outcomes"], inputs["technologies"], inputs["attributes"],
                           inputs["signals"], wide, "cap", SCORED_AT, a_capacity=100)
    assert (loose.account_scores["tier"] == "A").sum() == 80
    floor = Policy.model_validate({"tiers": {"a_min_probability": 0.9}})
    high = run(inputs, floor).account_scores
    assert (high.loc[high["tier"] == "A", "conversion_probability"] >= 0.9).all()
    assert (high["tier"] == "A").sum() < 0.15 * len(high)


def test_deal_value_falls_back_to_the_global_median_without_industry():
    inputs = maven_like()
    features = inputs["features"]
    newcomers = pd.DataFrame({"account_id": ["NEW", "NEW_RETAIL"], "industry": [None, "retail"]})
    features = pd.concat([features, newcomers], ignore_index=True)
    features["fit_x0"] = features["fit_x0"].fillna(0.0)
    result = run({**inputs, "features": features})
    value = result.account_scores.set_index("account_id")["expected_deal_value"]
    won = inputs["outcomes"][inputs["outcomes"]["outcome"] == "won"]
    industry_of = inputs["features"].set_index("account_id")["industry"]
    assert value["NEW"] == won["amount"].median()
    assert value["NEW_RETAIL"] == won.loc[won["account_id"].map(industry_of) == "retail", "amount"].median()
    assert value["M00"] == won.loc[won["account_id"] == "M00", "amount"].median()


def test_no_usable_feature_falls_back_to_the_base_rate():
    inputs, _ = synthetic(n=1000, rows_per_account=2, seed=12)
    constant = inputs["features"][["account_id", "industry"]].assign(fit_size=3.0, eng_visits=0.0)
    result = run({**inputs, "features": constant})
    won_share = (inputs["outcomes"]["outcome"] == "won").mean()
    assert np.allclose(result.account_scores["conversion_probability"], won_share)
    assert result.summary["split_method"] == "none"
    assert "constant" in result.summary["switched_off_layers"]["fit"]
    assert result.summary["low_confidence"] is True and result.account_scores["low_confidence"].all()


@pytest.mark.parametrize(("outcome", "expected"), [("won", 1.0), ("lost", 0.0)])
def test_single_class_outcomes_fall_back_to_the_base_rate(outcome, expected):
    inputs = maven_like()
    result = run({**inputs, "outcomes": inputs["outcomes"].assign(outcome=outcome)})
    scores = result.account_scores
    assert (scores["conversion_probability"] == expected).all()
    assert scores["low_confidence"].all() and scores["fit_score"].isna().all()
    assert (scores["tier"] == "B").all() and (scores["priority_score"] == 50).all()
    assert metric(result, "combined", "train", "base_rate") == expected
    assert metric(result, "combined", "train", "low_confidence") == 1.0
    assert "auc" not in set(result.metrics["metric"])
    assert result.summary["split_method"] == "none"


def test_no_outcomes_give_even_odds_and_unit_deal_value():
    inputs = maven_like()
    result = run({**inputs, "outcomes": inputs["outcomes"].iloc[:0]})
    scores = result.account_scores
    assert (scores["conversion_probability"] == 0.5).all()
    assert (scores["expected_deal_value"] == 1.0).all() and (scores["potential"] == 0.5).all()
    assert metric(result, "combined", "train", "n") == 0.0
    assert metric(result, "combined", "train", "low_confidence") == 1.0
    assert result.weights.empty and result.summary["low_confidence"] is True
    assert result.tier_lift["n"].sum() == 0


def test_too_few_closed_rows_use_the_observed_base_rate():
    inputs = maven_like()
    few = inputs["outcomes"].iloc[:20].assign(outcome=["won"] * 15 + ["lost"] * 5)
    result = run({**inputs, "outcomes": few})
    assert (result.account_scores["conversion_probability"] == 0.75).all()
    assert metric(result, "combined", "train", "brier") == pytest.approx(0.1875)
    assert "no usable feature" in result.summary["split_note"]


def test_expected_calibration_error_on_a_hand_computed_example():
    # Two equal-mass bins: {.1, .3} mean p 0.2 vs rate 0; {.6, .9} mean p 0.75 vs rate 1 -> 0.5*0.2 + 0.5*0.25.
    assert expected_calibration_error([0, 0, 1, 1], [0.1, 0.3, 0.6, 0.9], 2) == pytest.approx(0.225)
    # Three bins of two rows each, not of equal width: |0.2 - 0| + |0.4 - 1| + |1.8 - 2| over 6 rows.
    # (Equal-width thirds would put the four lowest rows in one bin and give 1.6 / 6.)
    y, p = [0, 0, 0, 1, 1, 1], [0.1, 0.1, 0.2, 0.2, 0.9, 0.9]
    assert expected_calibration_error(y, p, 3) == pytest.approx(1.0 / 6)
    table = reliability_table(y, p, 3)
    assert table["rows"].tolist() == [2, 2, 2]
    assert table["mean_probability"].tolist() == pytest.approx([0.1, 0.2, 0.9])
    assert table["observed_rate"].tolist() == pytest.approx([0.0, 0.5, 1.0])
    # A perfectly calibrated bin adds nothing.
    assert expected_calibration_error([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5], 2) == pytest.approx(0.0)


def test_ece_noise_floor_is_the_ece_of_perfectly_calibrated_predictions():
    # Certain predictions are always right: no noise at all.
    assert ece_noise_floor(np.array([0.0, 0.0, 1.0, 1.0]), 2, 50, 0) == 0.0
    # One bin of 400 rows at 0.5: E|k/400 - 0.5| for k ~ Binomial(400, 0.5) is sqrt(0.25/400) * sqrt(2/pi).
    assert ece_noise_floor(np.full(400, 0.5), 1, 2000, 0) == pytest.approx(0.025 * np.sqrt(2 / np.pi), rel=0.05)
    # Fewer rows, more noise.
    p = np.random.default_rng(0).uniform(0.05, 0.5, 4000)
    assert ece_noise_floor(p[:700], 10, 200, 0) > 2 * ece_noise_floor(p, 10, 200, 0)


def test_percentile_rank_and_tiers():
    priority = percentile_rank(np.array([0.1, 0.2, 0.2, 0.9]))
    assert np.allclose(priority, [12.5, 50.0, 50.0, 87.5])
    tiers = assign_tiers(priority, TierPolicy(a_min_priority=85, b_min_priority=50))
    assert tiers.tolist() == ["C", "B", "B", "A"]


@pytest.mark.skipif(not MAVEN.exists(), reason="Maven CRM data not available")
def test_maven_crm_export_scores_with_low_confidence():
    accounts = pd.read_csv(MAVEN / "accounts.csv")
    pipeline = pd.read_csv(MAVEN / "sales_pipeline.csv")
    features = pd.DataFrame({
        "account_id": accounts["account"], "industry": accounts["sector"],
        "fit_employees": accounts["employees"], "fit_revenue": accounts["revenue"],
        "fit_sector": accounts["sector"],
    })
    extra = ("year_established", "office_location", "subsidiary_of")
    attributes = accounts.melt(id_vars="account", value_vars=list(extra), var_name="attribute")
    attributes = attributes.rename(columns={"account": "account_id"}).astype({"value": "string"})
    stage = pipeline["deal_stage"].str.lower()
    outcomes = pd.DataFrame({
        "opportunity_id": pipeline["opportunity_id"], "account_id": pipeline["account"],
        "outcome": stage.where(stage.isin(["won", "lost"]), "open"),
        "created_at": pd.to_datetime(pipeline["engage_date"], format="%m/%d/%Y"),
        "closed_at": pd.to_datetime(pipeline["close_date"], format="%m/%d/%Y"),
        "amount": pipeline["close_value"],
    })
    result = run({"features": features, "outcomes": outcomes, "technologies": no_technologies(),
                  "attributes": attributes, "signals": no_signals()})
    assert result.summary["closed_outcomes"] == 6711
    assert result.summary["won_outcomes"] == 4238
    assert result.summary["low_confidence"] is True
    assert "no model trained" in result.summary["low_confidence_reasons"][0] or result.summary["kept_model"]
    assert len(result.account_scores) == 85
    assert result.account_scores["conversion_probability"].between(0.3, 0.95).all()


def test_an_outlier_won_amount_is_capped_at_the_policy_quantile():
    inputs = maven_like()
    outcomes = inputs["outcomes"].copy()
    won = outcomes["outcome"] == "won"
    first_won = outcomes.index[won][0]
    outcomes.loc[first_won, "amount"] = 5e9
    account = outcomes.loc[first_won, "account_id"]
    outcomes.loc[(outcomes["account_id"] == account) & won, "amount"] = 5e9
    result = run({**inputs, "outcomes": outcomes})
    value = result.account_scores.set_index("account_id")["expected_deal_value"]
    cap = np.quantile(outcomes.loc[won & (outcomes["amount"] > 0), "amount"], Policy().scoring.deal_value_cap_quantile)
    assert value[account] == pytest.approx(cap)
    assert value[account] < 5e9
