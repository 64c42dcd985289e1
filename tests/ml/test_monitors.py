"""Tests for the monitor math against hand-computed PSI values and the policy's status boundaries."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ml.monitors import (
    COVERAGE_COLUMNS,
    DRIFT_COLUMNS,
    EPSILON,
    coverage,
    coverage_status,
    psi,
    psi_categorical,
    psi_status,
    score_drift,
)
from ml.policy import MonitorPolicy

# 0..99 in four quantile bins of 25 values each: [0, 24.75), [24.75, 49.5), [49.5, 74.25), [74.25, 99].
REFERENCE = np.arange(100.0)
# 40 / 30 / 20 / 10 values in those bins.
SHIFTED = np.concatenate([
    np.linspace(0, 24, 40), np.linspace(25, 49, 30), np.linspace(50, 74, 20), np.linspace(75, 99, 10),
])
# sum((c - r) ln(c / r)) with r = .25 and c = .4, .3, .2, .1
SHIFTED_PSI = (
    0.15 * math.log(1.6) + 0.05 * math.log(1.2) - 0.05 * math.log(0.8) - 0.15 * math.log(0.4)
)


def test_identical_samples_have_zero_psi() -> None:
    rng = np.random.default_rng(0)
    sample = rng.lognormal(size=5000)
    assert psi(sample, sample.copy(), 10) == 0.0
    assert psi_categorical(["A", "B", None], ["A", "B", None]) == 0.0


def test_two_draws_of_one_distribution_stay_far_below_watch() -> None:
    rng = np.random.default_rng(0)
    value = psi(rng.normal(size=20_000), rng.normal(size=20_000), 10)
    assert 0 < value < 0.01


def test_known_shift_matches_hand_computed_psi() -> None:
    assert SHIFTED_PSI == pytest.approx(0.2282175, abs=1e-7)
    assert psi(REFERENCE, SHIFTED, 4) == pytest.approx(SHIFTED_PSI, rel=1e-9)


def test_values_outside_the_reference_range_land_in_the_end_bins() -> None:
    # Everything moves above the reference maximum: all current mass in the top bin.
    value = psi(REFERENCE, np.full(50, 1000.0), 4)
    expected = 3 * (EPSILON - 0.25) * math.log(EPSILON / 0.25) + 0.75 * math.log(1 / 0.25)
    assert value == pytest.approx(expected, rel=1e-9)


def test_missing_values_are_their_own_bin() -> None:
    current = np.concatenate([np.tile(REFERENCE, 9), np.full(100, np.nan)])
    # Value bins hold .225 each instead of .25; the missing bin .1 against epsilon.
    expected = 4 * (0.225 - 0.25) * math.log(0.225 / 0.25) + (0.1 - EPSILON) * math.log(0.1 / EPSILON)
    assert psi(REFERENCE, current, 4) == pytest.approx(expected, rel=1e-9)


def test_constant_reference_detects_shift_in_either_direction() -> None:
    reference = np.full(20, 5.0)
    expected = (0.5 - 1) * math.log(0.5) + (0.5 - EPSILON) * math.log(0.5 / EPSILON)
    for other in (6.0, 4.0):
        current = np.r_[np.full(10, 5.0), np.full(10, other)]
        assert psi(reference, current, 10) == pytest.approx(expected, rel=1e-9)
    assert psi(reference, np.full(7, 5.0), 10) == 0.0


def test_empty_sample_has_no_psi() -> None:
    assert math.isnan(psi(np.array([]), REFERENCE, 10))
    assert math.isnan(psi_categorical([], ["A"]))


def test_categorical_psi_matches_hand_computation() -> None:
    reference = ["A"] * 20 + ["B"] * 30 + ["C"] * 50
    current = ["A"] * 30 + ["B"] * 30 + ["C"] * 40
    expected = 0.1 * math.log(1.5) - 0.1 * math.log(0.8)
    assert psi_categorical(reference, current) == pytest.approx(expected, rel=1e-9)
    # A level the reference never had weighs against epsilon.
    new_level = psi_categorical(["A"] * 10, ["A"] * 5 + ["Z"] * 5)
    assert new_level == pytest.approx(
        (0.5 - 1) * math.log(0.5) + (0.5 - EPSILON) * math.log(0.5 / EPSILON), rel=1e-9
    )


@pytest.mark.parametrize(
    ("value", "status"),
    [(0.0, "ok"), (0.0999, "ok"), (0.10, "watch"), (0.2499, "watch"), (0.25, "alert"), (3.0, "alert"),
     (float("nan"), "no_data")],
)
def test_psi_status_at_policy_thresholds(value: float, status: str) -> None:
    assert psi_status(value, MonitorPolicy()) == status


def test_score_drift_against_previous_run() -> None:
    reference = pd.DataFrame({
        "run_id": "run-1",
        "conversion_probability": REFERENCE,
        "tier": ["A"] * 20 + ["B"] * 30 + ["C"] * 50,
    })
    current = pd.DataFrame({
        "conversion_probability": SHIFTED,
        "tier": ["A"] * 30 + ["B"] * 30 + ["C"] * 40,
    })
    drift = score_drift(current, reference, ["conversion_probability", "tier"], MonitorPolicy(psi_bins=4), "run-2")
    assert list(drift.columns) == DRIFT_COLUMNS
    assert drift["feature"].tolist() == ["conversion_probability", "tier"]
    assert drift["kind"].tolist() == ["numeric", "categorical"]
    assert drift["psi"].tolist() == pytest.approx([SHIFTED_PSI, 0.1 * math.log(1.5) - 0.1 * math.log(0.8)])
    assert drift["status"].tolist() == ["watch", "ok"]
    assert drift["run_id"].unique().tolist() == ["run-2"]
    assert drift["reference_run_id"].unique().tolist() == ["run-1"]
    assert drift[["n_reference", "n_current"]].to_numpy().tolist() == [[100, 100], [100, 100]]


def test_first_run_is_its_own_reference() -> None:
    current = pd.DataFrame({"fit_score": SHIFTED, "industry": ["Retail"] * 60 + [None] * 40})
    drift = score_drift(current, None, ["fit_score", "industry"], MonitorPolicy(), "run-1")
    assert drift["psi"].tolist() == [0.0, 0.0]
    assert drift["status"].tolist() == ["ok", "ok"]
    assert drift["reference_run_id"].tolist() == ["run-1", "run-1"]
    assert drift["n_reference"].tolist() == [100, 100]


def test_feature_new_this_run_is_compared_with_itself() -> None:
    reference = pd.DataFrame({"run_id": "run-1", "x": REFERENCE})
    current = pd.DataFrame({"x": SHIFTED, "eng_new": np.arange(100.0)})
    drift = score_drift(current, reference, ["x", "eng_new"], MonitorPolicy(psi_bins=4), "run-2")
    assert drift["reference_run_id"].tolist() == ["run-1", "run-2"]
    assert drift["psi"].tolist() == pytest.approx([SHIFTED_PSI, 0.0])


def test_score_drift_rejects_a_reference_spanning_runs_and_missing_columns() -> None:
    reference = pd.DataFrame({"run_id": ["run-1", "run-0"], "x": [1.0, 2.0]})
    with pytest.raises(ValueError, match="single run"):
        score_drift(pd.DataFrame({"x": [1.0]}), reference, ["x"], MonitorPolicy(), "run-2")
    with pytest.raises(KeyError, match="eng_gone"):
        score_drift(pd.DataFrame({"x": [1.0]}), None, ["eng_gone"], MonitorPolicy(), "run-2")


@pytest.mark.parametrize(
    ("utilization", "status"),
    [(0.0, "ok"), (0.89, "ok"), (0.9, "watch"), (1.0, "watch"), (1.0001, "alert"), (math.inf, "alert")],
)
def test_coverage_status_at_policy_thresholds(utilization: float, status: str) -> None:
    assert coverage_status(utilization, MonitorPolicy()) == status


def test_coverage_per_rep() -> None:
    policy = MonitorPolicy(default_a_tier_capacity=10, coverage_watch=0.9, coverage_alert=1.0)
    tiers = {
        # rep_id: (A-tier accounts, other accounts)
        "r1": (8, 5),   # 8 / 10 = 0.8 -> ok
        "r2": (9, 0),   # 9 / 10 = 0.9 -> watch
        "r3": (10, 2),  # 10 / 10 = 1.0 -> watch (full is not over)
        "r4": (11, 1),  # 11 / 10 -> alert
        "r5": (3, 0),   # capacity 2 from the reps frame: 1.5 -> alert
    }
    rows = []
    for rep, (a_count, other) in tiers.items():
        rows += [(f"{rep}-a{i}", rep, "A") for i in range(a_count)]
        rows += [(f"{rep}-o{i}", rep, "B" if i % 2 else "C") for i in range(other)]
    assignments = pd.DataFrame(rows, columns=["account_id", "rep_id", "tier"])
    reps = pd.DataFrame({
        "rep_id": ["r1", "r2", "r3", "r4", "r5", "r6"],
        "capacity_accounts": [500] * 6,
        "a_tier_capacity": [None, None, None, None, 2, None],
    })
    out = coverage(assignments, reps, policy, "run-7")
    assert list(out.columns) == COVERAGE_COLUMNS
    assert out["rep_id"].tolist() == ["r1", "r2", "r3", "r4", "r5", "r6"]
    assert out["accounts"].tolist() == [13, 9, 12, 12, 3, 0]
    assert out["a_tier_load"].tolist() == [8, 9, 10, 11, 3, 0]
    assert out["capacity"].tolist() == [10, 10, 10, 10, 2, 10]
    assert out["utilization"].tolist() == pytest.approx([0.8, 0.9, 1.0, 1.1, 1.5, 0.0])
    assert out["status"].tolist() == ["ok", "watch", "watch", "alert", "alert", "ok"]
    assert out["run_id"].unique().tolist() == ["run-7"]


def test_coverage_uses_default_capacity_without_column_and_keeps_unlisted_owners() -> None:
    assignments = pd.DataFrame({
        "account_id": ["a1", "a2", "a2", "a3"],  # a2 listed twice: counted once
        "rep_id": ["r1", "r1", "r1", "r9"],
        "tier": ["A", "A", "A", "C"],
    })
    out = coverage(assignments, pd.DataFrame({"rep_id": ["r1"]}), MonitorPolicy(default_a_tier_capacity=4), "run")
    assert out[["rep_id", "accounts", "a_tier_load", "capacity", "utilization", "status"]].to_numpy().tolist() == [
        ["r1", 2, 2, 4.0, 0.5, "ok"],
        ["r9", 1, 0, 4.0, 0.0, "ok"],
    ]


def test_zero_capacity_with_a_tier_load_is_an_alert() -> None:
    assignments = pd.DataFrame({"account_id": ["a1"], "rep_id": ["r1"], "tier": ["A"]})
    reps = pd.DataFrame({"rep_id": ["r1", "r2"], "a_tier_capacity": [0, 0]})
    out = coverage(assignments, reps, MonitorPolicy(), "run")
    assert out["utilization"].tolist() == [math.inf, 0.0]
    assert out["status"].tolist() == ["alert", "ok"]
