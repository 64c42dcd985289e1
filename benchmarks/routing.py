"""Benchmark: route N new leads against a planned warehouse; prints one JSON line.

    .venv/bin/python benchmarks/routing.py --leads 10000
    .venv/bin/python benchmarks/routing.py --warehouse data/warehouse.duckdb --leads 10000

Without --warehouse it first runs the whole pipeline on a synthetic book of --accounts accounts (not timed).
Then it draws --leads leads shaped like those accounts (5% without coordinates, 5% without industry) and
reports: `start_seconds` (loading the champion model and the plan, once per process), `route_seconds`
(scoring, territory, owner, tier and SLA for every lead, after start-up), `cli_seconds` (the whole
`territory route` command in a fresh process, Dagster start-up and the audit-trail append included),
`owners_per_lead` (must be exactly 1), the fallback counts and `identical_on_rerun` (a second router
routes the same file to the same answers).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd

from ml.routing import sample_leads
from ml.synthetic import generate_export
from orchestration.cli import main as territory
from orchestration.resources import PipelineSettings
from orchestration.routing import Router

STABLE_COLUMNS = ["lead_id", "territory_id", "rep_id", "owner_role", "tier", "conversion_probability", "reason"]


def _planned_warehouse(root: Path, accounts: int, seed: int) -> Path:
    export = root / "export"
    generate_export(export, n_accounts=accounts, seed=seed)
    warehouse = root / "wh" / "warehouse.duckdb"
    if territory(["run", "--input", str(export), "--warehouse", str(warehouse)]) != 0:
        raise SystemExit("the pipeline run that prepares the warehouse failed")
    return warehouse


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warehouse", type=Path, help="a warehouse a run has planned (default: run one)")
    parser.add_argument("--accounts", type=int, default=5_000, help="synthetic book size without --warehouse")
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="territory-route-bench-"))
    warehouse = args.warehouse or _planned_warehouse(root, args.accounts, args.seed)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        accounts = con.execute("select * from raw.accounts").df()
    leads = sample_leads(accounts.drop(columns=[c for c in accounts.columns if c.startswith("_")]),
                         args.leads, seed=args.seed).astype("string")
    lead_file = root / "leads.csv"
    leads.to_csv(lead_file, index=False)

    settings = PipelineSettings(warehouse=str(warehouse))
    started = time.perf_counter()
    router = Router.start(settings)
    start_seconds = time.perf_counter() - started
    started = time.perf_counter()
    first = router.route(pd.read_csv(lead_file, dtype=str), "bench-first")
    route_seconds = time.perf_counter() - started
    again = Router.start(settings).route(pd.read_csv(lead_file, dtype=str), "bench-second")

    started = time.perf_counter()
    cli = subprocess.run([str(Path(sys.executable).with_name("territory")), "route", "--input", str(lead_file),
                          "--warehouse", str(warehouse), "--show", "0"], check=False, capture_output=True, text=True)
    cli_seconds = time.perf_counter() - started
    if cli.returncode != 0:
        raise SystemExit(f"territory route failed: {cli.stderr[-2000:]}")

    owners = first.groupby("lead_id")["rep_id"].nunique()
    # The territory rule of each decision, without its distance: "nearest territory centre", "fallback ...".
    rules = first["reason"].str.split("; ", n=1).str[1].str.replace(r",? \d[\d.,]* km$", "", regex=True)
    print(json.dumps({
        "leads": len(first),
        "start_seconds": round(start_seconds, 3),
        "route_seconds": round(route_seconds, 3),
        "cli_seconds": round(cli_seconds, 2),
        "owners_per_lead": {"min": int(owners.min()), "max": int(owners.max())},
        "leads_without_owner": int(first["rep_id"].isna().sum()),
        "leads_without_reason": int((first["reason"].fillna("").str.len() == 0).sum()),
        "identical_on_rerun": bool(first[STABLE_COLUMNS].equals(again[STABLE_COLUMNS])),
        "tiers": {str(k): int(v) for k, v in first["tier"].value_counts().sort_index().items()},
        "rules": {str(k): int(v) for k, v in rules.value_counts().head(6).items()},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "warehouse": str(warehouse),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
