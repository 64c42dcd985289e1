"""Benchmark: scoring quality and time on a synthetic export against its known truth; prints one JSON line.

    .venv/bin/python benchmarks/scoring.py                      # the `make run` default: 5,000 accounts, seed 7
    .venv/bin/python benchmarks/scoring.py --accounts 20000 --seed 3

Runs the whole asset graph on the export once (not timed), then times the scoring step alone on the marts
the asset reads (`score_accounts`, as a challenger with no champion). Reports `spearman_vs_truth` (rank
correlation of every account's conversion_probability with the generator's true probability,
`_truth/account_truth.parquet`), the held-out test and back-test metrics with their n and ECE noise floor,
tier lift on held-out outcomes, and `scoring_seconds`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
from dagster import DagsterInstance
from scipy.stats import spearmanr

from ml.scoring import score_accounts
from ml.synthetic import generate_export
from orchestration.assets.scoring import a_tier_capacity, read_scoring_inputs
from orchestration.definitions import FULL_PIPELINE_JOB, build_definitions
from orchestration.resources import PipelineSettings

REPORTED = ("n", "auc", "brier", "ece", "ece_noise_floor", "base_rate")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", help="where to keep the export and warehouse (default: a temp folder)")
    args = parser.parse_args()

    root = Path(args.workdir or tempfile.mkdtemp(prefix="territory-scoring-bench-"))
    export = root / f"export_{args.accounts}_{args.seed}"
    if not (export / "accounts.parquet").exists():
        generate_export(export, n_accounts=args.accounts, seed=args.seed)
    settings = PipelineSettings(input_dir=str(export), warehouse=str(root / "warehouse" / "warehouse.duckdb"))
    job = build_definitions(settings).resolve_job_def(FULL_PIPELINE_JOB)
    # dbt echoes its log to stdout; keep stdout for the one JSON line.
    with DagsterInstance.ephemeral() as instance, contextlib.redirect_stdout(sys.stderr):
        if not job.execute_in_process(instance=instance, raise_on_error=False).success:
            print(json.dumps({"accounts": args.accounts, "seed": args.seed, "success": False}))
            return 1
    policy = settings.load_policy()
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        marts = read_scoring_inputs(con)
    started = time.perf_counter()
    result = score_accounts(marts.features, marts.outcomes, marts.technologies, marts.attributes, marts.signals,
                            policy, "benchmark", datetime(2025, 1, 1), None, a_tier_capacity(marts.reps, policy),
                            marts.training_features, marts.training_signals)
    seconds = time.perf_counter() - started
    truth = pd.read_parquet(export / "_truth" / "account_truth.parquet")
    scored = result.account_scores.merge(truth, on="account_id")
    combined = result.metrics[result.metrics["layer"] == "combined"]
    splits = {
        split: {metric: round(float(value), 4) for metric, value in zip(rows["metric"], rows["value"])
                if metric in REPORTED}
        for split, rows in combined.groupby("split") if split in ("test", "back_test", "cross_validated")
    }
    print(json.dumps({
        "accounts": args.accounts, "seed": args.seed, "success": True,
        "spearman_vs_truth": round(float(spearmanr(scored["conversion_probability"],
                                                   scored["true_probability"]).statistic), 4),
        "spearman_n": len(scored), **splits,
        "tier_lift": {tier: round(float(rate), 4) for tier, rate in
                      zip(result.tier_lift["tier"], result.tier_lift["conversion_rate"])},
        "scoring_seconds": round(seconds, 1),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
