"""Tests for the GX suites and runner: good frames pass, planted defects fail by name, errors fail."""

from __future__ import annotations

import great_expectations.expectations as gxe
import numpy as np
import pandas as pd
import pytest
from great_expectations.core.batch_definition import BatchDefinition
from great_expectations.datasource.fluent.interfaces import Batch

from expectations import SUITES, SuiteOutcome, run_suite


def raw_accounts_frame(n: int = 400) -> pd.DataFrame:
    """Like ``raw.accounts`` read from DuckDB: VARCHAR columns as pandas 3 strings."""
    rng = np.random.default_rng(1)
    return pd.DataFrame({
        "account_id": [f"ACC{i:05d}" for i in range(n)],
        "account_name": [f"Account {i}" for i in range(n)],
        "latitude": [f"{v:.5f}" for v in rng.uniform(25, 48, n)],
        "longitude": [f"{v:.5f}" for v in rng.uniform(-120, -70, n)],
        "_row_number": np.arange(1, n + 1),
        "_source_file": "accounts.csv",
    })


def raw_opportunities_frame(n: int = 300) -> pd.DataFrame:
    return pd.DataFrame({
        "opportunity_id": [f"OPP{i:05d}" for i in range(n)],
        "account_id": [f"ACC{i % 50:05d}" for i in range(n)],
        "stage": ["Closed Won", "Closed Lost", "Negotiation"] * (n // 3),
        "amount": None,
        "_row_number": np.arange(1, n + 1),
        "_source_file": "opportunities.csv",
    })


def account_scores_frame(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    probability = rng.uniform(0, 1, n)
    priority = pd.Series(probability).rank(pct=True).to_numpy() * 100
    fit = rng.uniform(0, 100, n)
    fit[::10] = np.nan
    return pd.DataFrame({
        "account_id": [f"ACC{i:05d}" for i in range(n)],
        "conversion_probability": probability,
        "priority_score": priority,
        "tier": np.where(priority >= 85, "A", np.where(priority >= 50, "B", "C")),
        "fit_score": fit,
        "top_factors": "fit_industry; eng_web_visits",
    })


GOOD = {
    "raw_accounts": raw_accounts_frame,
    "raw_opportunities": raw_opportunities_frame,
    "account_scores": account_scores_frame,
}


def only_failure(outcome: SuiteOutcome) -> dict:
    assert outcome.errored == []
    assert len(outcome.failed) == 1, outcome.failed
    return outcome.failed[0]


@pytest.mark.parametrize(("name", "count"), [("raw_accounts", 8), ("raw_opportunities", 6), ("account_scores", 11)])
def test_good_frame_passes_every_expectation(name: str, count: int) -> None:
    df = GOOD[name]()
    outcome = run_suite(name, df)
    assert outcome == SuiteOutcome(
        suite=name, success=True, evaluated=count, failed=[], errored=[], rows=len(df), rows_sampled=len(df)
    )
    assert len(SUITES[name]()) == count


def test_good_frame_with_nullable_string_dtype_passes() -> None:
    df = raw_accounts_frame().astype({"account_id": "string", "latitude": "string", "longitude": "string"})
    df.loc[3, "latitude"] = pd.NA
    assert run_suite("raw_accounts", df).success


def test_duplicate_account_id_fails_uniqueness() -> None:
    df = raw_accounts_frame()
    df.loc[7, "account_id"] = "ACC00003"
    outcome = run_suite("raw_accounts", df)
    assert outcome.success is False
    failure = only_failure(outcome)
    assert (failure["expectation"], failure["column"]) == ("expect_column_values_to_be_unique", "account_id")
    assert failure["unexpected_count"] == 2
    assert "ACC00003" in failure["observed"]


def test_missing_account_ids_are_tolerated_up_to_one_percent() -> None:
    df = raw_accounts_frame(400)
    df.loc[[5, 6], "account_id"] = [None, "  "]  # 0.25% null, 0.25% blank
    assert run_suite("raw_accounts", df).success

    df.loc[10:14, "account_id"] = None  # 6 of 400 null = 1.5%
    failure = only_failure(run_suite("raw_accounts", df))
    assert (failure["expectation"], failure["column"]) == ("expect_column_values_to_not_be_null", "account_id")
    assert failure["unexpected_count"] == 6


def test_non_numeric_coordinates_fail_above_five_percent() -> None:
    df = raw_accounts_frame(400)
    df.loc[:11, "latitude"] = "n/a"  # 3%: tolerated
    df.loc[:99, "longitude"] = None  # missing coordinates are not checked
    assert run_suite("raw_accounts", df).success

    df.loc[:39, "latitude"] = "north"  # 10%
    failure = only_failure(run_suite("raw_accounts", df))
    assert (failure["expectation"], failure["column"]) == ("expect_column_values_to_match_regex", "latitude")
    assert failure["unexpected_count"] == 40


def test_empty_raw_accounts_fails_row_count() -> None:
    failure = only_failure(run_suite("raw_accounts", raw_accounts_frame(0)))
    assert failure["expectation"] == "expect_table_row_count_to_be_between"
    assert failure["observed"] == "observed 0"


def test_opportunity_defects_each_named() -> None:
    df = raw_opportunities_frame()
    df.loc[4, "opportunity_id"] = "OPP00001"
    df.loc[9, "stage"] = None
    outcome = run_suite("raw_opportunities", df)
    assert outcome.success is False and outcome.errored == []
    assert sorted((f["expectation"], f["column"], f["unexpected_count"]) for f in outcome.failed) == [
        ("expect_column_values_to_be_unique", "opportunity_id", 2),
        ("expect_column_values_to_not_be_null", "stage", 1),
    ]


def test_missing_required_column_fails_and_its_value_checks_error() -> None:
    outcome = run_suite("raw_opportunities", raw_opportunities_frame().drop(columns=["stage"]))
    assert outcome.success is False
    assert [(f["expectation"], f["column"]) for f in outcome.failed] == [("expect_column_to_exist", "stage")]
    assert [(e["expectation"], e["column"]) for e in outcome.errored] == [
        ("expect_column_values_to_not_be_null", "stage")
    ]
    assert "stage" in outcome.errored[0]["error"]


def test_probability_above_one_fails_range() -> None:
    df = account_scores_frame()
    df.loc[12, "conversion_probability"] = 1.5
    failure = only_failure(run_suite("account_scores", df))
    assert (failure["expectation"], failure["column"]) == (
        "expect_column_values_to_be_between", "conversion_probability"
    )
    assert failure["unexpected_count"] == 1
    assert "1.5" in failure["observed"]


def test_tier_outside_abc_fails_set() -> None:
    df = account_scores_frame()
    df.loc[[0, 1], "tier"] = "D"
    failure = only_failure(run_suite("account_scores", df))
    assert (failure["expectation"], failure["column"]) == ("expect_column_values_to_be_in_set", "tier")
    assert failure["unexpected_count"] == 2
    assert "'D'" in failure["observed"]


def test_null_fit_score_passes_but_out_of_range_fails() -> None:
    df = account_scores_frame()
    df["fit_score"] = np.nan
    assert run_suite("account_scores", df).success
    df.loc[3, "fit_score"] = 101.0
    failure = only_failure(run_suite("account_scores", df))
    assert (failure["expectation"], failure["column"]) == ("expect_column_values_to_be_between", "fit_score")


def test_expectation_that_raises_counts_as_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self, *args, **kwargs):
        raise RuntimeError("planted failure inside the expectation")

    monkeypatch.setattr(gxe.ExpectColumnValuesToBeInSet, "_validate", broken)
    # The data is good: only the error can make this suite fail.
    outcome = run_suite("account_scores", account_scores_frame())
    assert outcome.success is False
    assert outcome.failed == []
    assert outcome.errored == [{
        "expectation": "expect_column_values_to_be_in_set",
        "column": "tier",
        "error": "planted failure inside the expectation",
    }]


def test_column_of_wrong_type_errors_instead_of_passing() -> None:
    df = account_scores_frame()
    # Text probabilities make GX's range comparison raise while computing the metric.
    df["conversion_probability"] = df["conversion_probability"].map(lambda v: f"{v:.3f}")
    outcome = run_suite("account_scores", df)
    assert outcome.success is False
    assert outcome.failed == []
    assert [(e["expectation"], e["column"]) for e in outcome.errored] == [
        ("expect_column_values_to_be_between", "conversion_probability")
    ]
    assert "same type" in outcome.errored[0]["error"]


def test_batch_that_cannot_load_errors_every_expectation(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self, *args, **kwargs):
        raise RuntimeError("planted batch failure")

    monkeypatch.setattr(BatchDefinition, "get_batch", broken)
    outcome = run_suite("raw_opportunities", raw_opportunities_frame())
    assert outcome.success is False
    assert outcome.failed == []
    assert len(outcome.errored) == outcome.evaluated == 6
    assert {e["error"] for e in outcome.errored} == {"RuntimeError: planted batch failure"}


def test_suite_level_crash_falls_back_to_one_expectation_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self, *args, **kwargs):
        raise RuntimeError("planted suite failure")

    monkeypatch.setattr(Batch, "_validate_expectation_suite", broken)
    df = raw_accounts_frame()
    df.loc[7, "account_id"] = "ACC00003"
    # Each expectation still ran on its own, so the outcome is exactly the duplicate.
    failure = only_failure(run_suite("raw_accounts", df))
    assert (failure["expectation"], failure["unexpected_count"]) == ("expect_column_values_to_be_unique", 2)

    monkeypatch.setattr(Batch, "_validate_expectation", broken)
    outcome = run_suite("raw_accounts", raw_accounts_frame())
    assert outcome.success is False
    assert len(outcome.errored) == outcome.evaluated == 8


def test_sampled_run_still_checks_keys_on_every_row() -> None:
    df = account_scores_frame(2000)
    df.loc[1999, "account_id"] = "ACC00000"
    df.loc[1500, "top_factors"] = None
    outcome = run_suite("account_scores", df, sample_rows=100)
    assert (outcome.rows, outcome.rows_sampled) == (2000, 100)
    assert sorted((f["expectation"], f["column"], f["unexpected_count"]) for f in outcome.failed) == [
        ("expect_column_values_to_be_unique", "account_id", 2),
        ("expect_column_values_to_not_be_null", "top_factors", 1),
    ]


def test_sampled_run_checks_row_level_expectations_on_the_sample() -> None:
    df = account_scores_frame(2000)
    df["tier"] = "D"
    outcome = run_suite("account_scores", df, sample_rows=100)
    failure = only_failure(outcome)
    assert failure["expectation"] == "expect_column_values_to_be_in_set"
    assert failure["unexpected_count"] == 100


def test_unknown_suite_is_rejected() -> None:
    with pytest.raises(ValueError, match="raw_accounts"):
        run_suite("raw_contacts", raw_accounts_frame())


@pytest.mark.parametrize("name", sorted(GOOD))
def test_suite_on_5k_good_rows_checks_every_row_and_passes(name: str) -> None:
    # Speed belongs to benchmarks; here: below the sample size every expectation sees all 5,001 rows.
    outcome = run_suite(name, GOOD[name](5001))
    assert (outcome.rows, outcome.rows_sampled, outcome.evaluated) == (5001, 5001, len(SUITES[name]()))
    assert outcome.success, (outcome.failed, outcome.errored)
