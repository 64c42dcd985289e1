"""Benchmark: the whole asset graph on a synthetic export of N accounts; prints one JSON line.

    .venv/bin/python benchmarks/pipeline.py --accounts 1000000 --seed 7

Reports wall seconds for generating the export and for each Dagster step, the process's peak RSS and the
row counts, so the 1M-account target of every stage can be checked on this machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import duckdb
from dagster import DagsterInstance

from ml.synthetic import generate_export
from orchestration.definitions import FULL_PIPELINE_JOB, build_definitions
from orchestration.resources import PipelineSettings


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", help="where to keep the export and warehouse (default: a temp folder)")
    args = parser.parse_args()

    root = Path(args.workdir or tempfile.mkdtemp(prefix="territory-bench-"))
    export = root / f"export_{args.accounts}_{args.seed}"
    started = time.perf_counter()
    if not (export / "accounts.parquet").exists():
        generate_export(export, n_accounts=args.accounts, seed=args.seed)
    generate_seconds = time.perf_counter() - started

    settings = PipelineSettings(input_dir=str(export), warehouse=str(root / "warehouse" / "warehouse.duckdb"))
    job = build_definitions(settings).resolve_job_def(FULL_PIPELINE_JOB)
    started = time.perf_counter()
    # dbt echoes its log to stdout; keep stdout for the one JSON line.
    with DagsterInstance.ephemeral() as instance, contextlib.redirect_stdout(sys.stderr):
        result = job.execute_in_process(
            instance=instance, raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
        )
        steps = {
            s.step_key: round((s.end_time or 0) - (s.start_time or 0), 1)
            for s in instance.get_run_step_stats(result.run_id)
        }
    run_seconds = time.perf_counter() - started
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        rows = {t: con.execute(f"select count(*) from {t}").fetchall()[0][0] for t in (
            "raw.engagement_events", "account_scores", "territory_assignments", "rejected_rows")}
    print(json.dumps({
        "accounts": args.accounts, "seed": args.seed, "success": result.success,
        "generate_seconds": round(generate_seconds, 1), "run_seconds": round(run_seconds, 1),
        "peak_rss_mb": round(peak_rss_mb()), "steps_seconds": steps, "rows": rows,
    }))
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
