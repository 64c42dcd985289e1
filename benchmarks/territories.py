"""Benchmark the territory planner on a synthetic clustered instance and print one JSON line of figures.

Usage: `python benchmarks/territories.py --accounts 100000 --reps 100 --seed 1`
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd

from ml.policy import Policy
from ml.territories import plan_territories
from ml.us_cities import US_CITIES

METRO_COUNT = 40
# Metro sizes follow Zipf's law, as city sizes do.
ZIPF_EXPONENT = 1.0
METRO_SPREAD_DEG = 0.35
RURAL_SHARE = 0.05
# Lognormal sigma for which the top 20% of accounts hold about 64% of the potential (as in NOTES.md).
POTENTIAL_SIGMA = 1.2
TIER_SHARES = {"A": 0.15, "B": 0.35, "C": 0.50}
INDUSTRIES = (
    "software",
    "manufacturing",
    "healthcare",
    "finance",
    "retail",
    "logistics",
    "energy",
    "education",
    "media",
    "telecom",
    "construction",
    "hospitality",
)
CHILD_SHARE = 0.02
US_LAT_RANGE = (25.0, 49.0)
US_LON_RANGE = (-124.0, -67.0)


def make_accounts(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Accounts clustered around Zipf-weighted metros, a rural scatter, lognormal potential, A/B/C tiers."""
    metros = US_CITIES[:METRO_COUNT]
    weights = 1.0 / np.arange(1, len(metros) + 1) ** ZIPF_EXPONENT
    metro = rng.choice(len(metros), size=n, p=weights / weights.sum())
    lat = np.array([c.latitude for c in metros])[metro] + rng.normal(0, METRO_SPREAD_DEG, n)
    lon = np.array([c.longitude for c in metros])[metro] + rng.normal(0, METRO_SPREAD_DEG, n)
    rural = rng.random(n) < RURAL_SHARE
    lat[rural] = rng.uniform(*US_LAT_RANGE, rural.sum())
    lon[rural] = rng.uniform(*US_LON_RANGE, rural.sum())
    ids = np.char.add("acc", np.arange(n).astype(str))
    parent = np.full(n, None, dtype=object)
    children = np.flatnonzero(rng.random(n) < CHILD_SHARE)
    parents = rng.integers(0, n, children.size)
    keep = parents != children
    parent[children[keep]] = ids[parents[keep]]
    lat[children[keep]] = lat[parents[keep]]
    lon[children[keep]] = lon[parents[keep]]
    return pd.DataFrame(
        {
            "account_id": ids,
            "latitude": lat,
            "longitude": lon,
            "industry": rng.choice(INDUSTRIES, size=n),
            "potential": rng.lognormal(mean=10.0, sigma=POTENTIAL_SIGMA, size=n),
            "tier": rng.choice(list(TIER_SHARES), size=n, p=list(TIER_SHARES.values())),
            "owner_rep_id": None,
            "parent_account_id": parent,
        }
    )


def make_reps(k: int, accounts: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Account executives living where the accounts are."""
    home = rng.integers(0, len(accounts), k)
    return pd.DataFrame(
        {
            "rep_id": [f"rep{i:04d}" for i in range(k)],
            "role": "AE",
            "latitude": accounts["latitude"].to_numpy()[home],
            "longitude": accounts["longitude"].to_numpy()[home],
            "capacity_accounts": None,
            "region": None,
        }
    )


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send C-level prints (HiGHS writes a few to stdout) to stderr, so stdout holds only the JSON line."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=5000)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    accounts = make_accounts(args.accounts, rng)
    reps = make_reps(args.reps, accounts, rng)
    policy = Policy()
    start = time.perf_counter()
    with _stdout_to_stderr():
        plan = plan_territories(accounts, reps, policy.territories, policy.workload_weights)
    seconds = time.perf_counter() - start
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "accounts": args.accounts,
                "reps": args.reps,
                "seed": args.seed,
                "seconds": round(seconds, 2),
                "peak_rss_mb": round(peak_rss_mb),
                "max_rel_dev": {k: round(v, 4) for k, v in plan.balance.items()},
                "compactness_vs_kmeans": round(plan.compactness_vs_kmeans, 3),
                "baselines": {"kmeans": {k: round(v, 4) for k, v in plan.baseline.items()}},
                "solver": plan.solver,
                "warnings": plan.warnings,
            }
        )
    )


if __name__ == "__main__":
    main()
