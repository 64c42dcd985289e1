"""The run summary's model lines say which rows the metrics come from and point out a held-out base-rate shift."""

from __future__ import annotations

import duckdb
import pandas as pd

from orchestration.summary import model_lines, plan_warning_lines


def warehouse(metrics: list[tuple[str, str, float]], lift: list[tuple[str, int, float]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    frame = pd.DataFrame(metrics, columns=["split", "metric", "value"]).assign(layer="combined", model_version="v1")
    con.register("metrics_frame", frame)
    con.execute("create table score_model_metrics as select model_version, layer, split, metric, value from metrics_frame")
    con.register("lift_frame", pd.DataFrame(lift, columns=["tier", "n", "conversion_rate"]))
    con.execute("create table tier_lift as select * from lift_frame")
    return con


def test_held_out_metrics_with_a_base_rate_shift_are_labelled_and_the_shift_is_printed():
    con = warehouse([
        ("train", "base_rate", 0.08), ("train", "low_confidence", 0.0), ("test", "base_rate", 0.209),
        ("test", "base_rate_ratio_to_train", 0.209 / 0.08), ("test", "n", 1600.0), ("test", "auc", 0.67),
        ("test", "ece", 0.05), ("test", "ece_bins", 10.0), ("test", "ece_noise_floor", 0.021), ("back_test", "n", 4800.0),
        ("back_test", "auc", 0.7), ("back_test", "ece", 0.01), ("back_test", "ece_bins", 10.0),
        ("back_test", "ece_noise_floor", 0.012), ("back_test", "windows", 3.0), ("train", "recent_logit_shift", 0.63),
        ("train", "recent_shift_half_life_days", 15.0),
    ], [("A", 100, 0.4), ("B", 500, 0.2), ("C", 1000, 0.1)])
    lines = model_lines(con, 0.25)
    assert lines[0] == ("model (held-out test, n=1,600): auc 0.670, ece 0.050 (ECE over 10 equal-mass bins; perfectly "
                        "calibrated predictions would show 0.021 on these rows)")
    assert lines[1] == ("  base rate shift: the held-out test period converts at 20.9% against 8.0% in train (2.6x); "
                        "held-out calibration and Brier reflect that shift")
    assert lines[2] == ("  recalibrated toward recent outcomes: +0.63 on the logit scale (outcomes weighted by a "
                        "15-day half-life, chosen on the latest training outcomes)")
    assert lines[3] == ("model (back-test, 3 out-of-time windows, n=4,800): auc 0.700, ece 0.010 (ECE over 10 "
                        "equal-mass bins; perfectly calibrated predictions would show 0.012 on these rows)")
    assert lines[4] == "tier lift (held-out conversion): A 40.0% (n=100), B 20.0% (n=500), C 10.0% (n=1,000)"
    # Below the threshold the shift is not worth a line.
    assert not any("base rate shift" in line for line in model_lines(con, 2.0))


def test_in_sample_metrics_of_the_prior_weights_are_not_called_held_out():
    con = warehouse([
        ("train", "low_confidence", 1.0), ("train", "n", 0.0), ("test", "n", 0.0), ("in_sample", "n", 6711.0),
        ("in_sample", "auc", 0.55), ("in_sample", "ece", 0.02), ("in_sample", "ece_bins", 10.0),
        ("in_sample", "prior_weights", 1.0), ("train", "closed_outcomes", 6711.0),
        ("train", "accounts_with_outcomes", 85.0),
    ], [("A", 900, 0.7), ("B", 2000, 0.63), ("C", 3811, 0.6)])
    lines = model_lines(con, 0.25, {"closed_outcomes": 200, "accounts_with_outcomes": 200})
    assert lines[0] == ("model (in-sample, policy prior weights; no model trained this run, nothing held out, "
                        "n=6,711): auc 0.550, ece 0.020 (ECE over 10 equal-mass bins)  [LOW CONFIDENCE: 85 accounts "
                        "with outcomes, policy minimum 200; see score_model_metrics]")
    assert not any("held-out" in line for line in lines)
    assert lines[-1].startswith("tier lift (in-sample conversion): A 70.0% (n=900)")


def test_undated_outcomes_are_judged_out_of_fold_and_an_unshifted_calibration_says_nothing():
    con = warehouse([
        ("train", "low_confidence", 0.0), ("train", "recent_logit_shift", 0.0), ("test", "n", 1800.0),
        ("test", "auc", 0.91), ("cross_validated", "n", 9000.0), ("cross_validated", "auc", 0.905),
        ("cross_validated", "ece", 0.006), ("cross_validated", "ece_bins", 10.0), ("cross_validated", "folds", 5.0),
    ], [("A", 270, 0.9), ("B", 630, 0.5), ("C", 900, 0.1)])
    lines = model_lines(con, 0.25)
    assert lines[1] == "model (out-of-fold over all 9,000 closed outcomes): auc 0.905, ece 0.006 (ECE over 10 equal-mass bins)"
    assert not any("recalibrated" in line or "back-test" in line for line in lines)


def test_the_live_plans_warnings_are_printed_and_other_scenarios_are_not():
    con = duckdb.connect()
    con.execute("create table territory_scenarios (scenario varchar, warnings varchar)")
    con.execute("insert into territory_scenarios values ('live_policy', '85 accounts over 35 owner reps is 2.4 per "
                "rep; balance may be out of reach'), ('two_more_reps', 'other')")
    expected = "  plan notes: 85 accounts over 35 owner reps is 2.4 per rep; balance may be out of reach"
    assert plan_warning_lines(con) == [expected]
    con.execute("update territory_scenarios set warnings = null")
    assert plan_warning_lines(con) == []
