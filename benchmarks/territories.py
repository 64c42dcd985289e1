"""Benchmark the territory planner and its baselines on one instance and print one JSON line of figures.

Usage: `python benchmarks/territories.py --accounts 100000 --reps 100 --seed 1` (a synthetic clustered book)
or `python benchmarks/territories.py --input DIR --potential-column NAME [--reps K]` (a real export: its
accounts file, and its reps file or K reps placed where the accounts are densest). The territory map and
the plan's assignments (territory_assignments_<instance>.csv: every account with its territory and rep) are
written under --out (default data/reports/), named after the instance, and their paths are in the JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from ml import territory_baselines as baselines
from ml.ingest import find_table_file, normalise_column_name
from ml.policy import Policy, TerritoryPolicy
from ml.territories import account_geometry, kmeans_assignment, measure_assignment, plan_territories
from ml.territory_report import territory_map
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
# Baselines too slow beyond these sizes (the count-balanced flow goes dense in dense metros).
COUNT_BALANCED_MAX_ACCOUNTS = 200_000
MILP_MAX_ACCOUNTS = 500
DEFAULT_TOLERANCE = 0.05
# Generated reps: density is measured on at most this many accounts, as the distance to the n-th nearest
# neighbour with n a tenth of a group's mean size.
DENSITY_SAMPLE = 50_000
DENSITY_NEIGHBOURS_PER_GROUP = 10
REPORTS_DIR = Path(__file__).resolve().parent.parent / "data" / "reports"
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


def read_export(folder: Path, potential_column: str, tier_policy) -> pd.DataFrame:
    """The accounts file of an input-contract folder, with `potential` from the named column and tiers
    cut from potential percentiles at the policy's cut-offs (a raw export has no scores yet)."""
    path = find_table_file(folder, "accounts")
    if path is None:
        raise SystemExit(f"{folder} has no accounts file (accounts.csv or accounts.parquet)")
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str)
    frame.columns = [normalise_column_name(c) for c in frame.columns]
    column = normalise_column_name(potential_column)
    if column not in frame:
        raise SystemExit(f"{path} has no column {potential_column!r}; columns: {', '.join(frame.columns)}")
    potential = pd.to_numeric(frame[column], errors="coerce").clip(lower=0)
    priority = potential.rank(pct=True) * 100
    tier = np.where(
        priority >= tier_policy.a_min_priority,
        "A",
        np.where(priority >= tier_policy.b_min_priority, "B", "C"),
    )
    return frame.assign(potential=potential.fillna(0.0), tier=tier)


def reps_for(folder: Path | None, accounts: pd.DataFrame, k: int | None, seed: int) -> pd.DataFrame:
    """The export's reps file, or K generated account executives where the accounts are densest: k-means
    splits the accounts into K groups, and each rep lives at the densest account of a group (the one
    whose nearest neighbours are closest), not at the group's mean, which scattered accounts pull into
    empty country."""
    path = find_table_file(folder, "reps") if folder else None
    if path is not None and k is None:
        reps = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str)
        reps.columns = [normalise_column_name(c) for c in reps.columns]
        return reps
    xyz, _ = account_geometry(accounts, Policy().workload_weights)
    located = xyz[np.isfinite(xyz[:, 0])]
    if len(located) > DENSITY_SAMPLE:
        located = located[np.random.default_rng(seed).choice(len(located), DENSITY_SAMPLE, replace=False)]
    group, centres = kmeans_assignment(located, k or 20, seed)
    n_groups = len(centres)
    neighbours = int(np.clip(len(located) // (DENSITY_NEIGHBOURS_PER_GROUP * n_groups), 1, len(located) - 1))
    spread = cKDTree(located).query(located, k=neighbours + 1)[0][:, -1]
    densest = np.lexsort((spread, group))
    home = located[densest[np.r_[True, group[densest][1:] != group[densest][:-1]]]]
    return pd.DataFrame(
        {
            "rep_id": [f"rep{i:04d}" for i in range(n_groups)],
            "role": "AE",
            "latitude": np.degrees(np.arcsin(np.clip(home[:, 2], -1, 1))),
            "longitude": np.degrees(np.arctan2(home[:, 1], home[:, 0])),
        }
    )


def instance_name(args: argparse.Namespace, k: int) -> str:
    """A file-name stem that tells instances apart: the input folder, potential column and reps, or
    the synthetic book's size, reps and seed (and the tolerance when it is not the default)."""
    if args.input:
        stem = f"{args.input.resolve().name}_{normalise_column_name(args.potential_column)}_{k}reps"
    else:
        stem = f"{args.accounts}x{k}_seed{args.seed}"
    if args.tolerance != DEFAULT_TOLERANCE:
        stem += f"_tol{args.tolerance:g}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem)


def _timed(run: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    result = run()
    return result, time.perf_counter() - started


def _rounded(figures: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) if k != "compactness" else round(v, 1) for k, v in figures.items()}


def run_baselines(
    accounts: pd.DataFrame, plan, k: int, policy: TerritoryPolicy, workload: dict[str, float]
) -> dict[str, dict]:
    """Every baseline on the accounts with coordinates, measured like the plan: seconds, balance and
    compactness (and, for the exact MILP, the plan's compactness relative to it)."""
    xyz, criteria = account_geometry(accounts, workload)
    located = np.isfinite(xyz[:, 0])
    xyz, criteria = xyz[located], criteria[located]
    seed = policy.random_seed
    tolerance = np.array([policy.tolerance_of(c) for c in plan.balance])
    runs = {
        "kmeans": lambda: baselines.kmeans(xyz, k, seed),
        "greedy": lambda: baselines.greedy_balancer(xyz, criteria, k, float(tolerance.min()), seed),
    }
    if len(xyz) <= COUNT_BALANCED_MAX_ACCOUNTS:
        runs["count_balanced_flow"] = lambda: baselines.count_balanced_flow(xyz, k, seed)
    if len(xyz) <= MILP_MAX_ACCOUNTS:
        rep_index = {r: i for i, r in enumerate(plan.territories["rep_id"])}
        start = plan.assignments["rep_id"].map(rep_index).to_numpy()[located]
        runs["exact_milp"] = lambda: baselines.exact_milp(xyz, criteria, k, tolerance, start)
    out = {}
    for name, run in runs.items():
        territory, seconds = _timed(run)
        if territory is None:
            out[name] = {"seconds": round(seconds, 2), "status": "no assignment meets every band"}
            continue
        out[name] = {
            "seconds": round(seconds, 2),
            **_rounded(measure_assignment(xyz, criteria, territory, k)),
        }
    return out


def shifted(accounts: pd.DataFrame, plan, share: float, seed: int) -> pd.DataFrame:
    """The book a quarter later: current owners from the plan, and `share` of the accounts with new
    scores (potential drawn from the others, tier redrawn)."""
    rng = np.random.default_rng(seed + 1)
    changed = rng.random(len(accounts)) < share
    potential = accounts["potential"].to_numpy(copy=True)
    potential[changed] = rng.choice(potential, changed.sum())
    tier = accounts["tier"].to_numpy(copy=True)
    tier[changed] = rng.choice(tier, changed.sum())
    return accounts.assign(owner_rep_id=plan.assignments["rep_id"].to_numpy(), potential=potential, tier=tier)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=5000)
    parser.add_argument(
        "--reps",
        type=int,
        default=None,
        help="generate this many owner reps (default: the input's reps file if it has one, else 20 generated)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--tolerance", type=float, default=DEFAULT_TOLERANCE, help="band on every criterion (default 0.05)"
    )
    parser.add_argument(
        "--input", type=Path, help="an input-contract folder to plan instead of a synthetic book"
    )
    parser.add_argument(
        "--potential-column", default="annual_revenue", help="with --input: the potential column"
    )
    parser.add_argument(
        "--out", type=Path, default=REPORTS_DIR, help="folder for the map and the assignments CSV"
    )
    parser.add_argument(
        "--replan-shift",
        type=float,
        default=0.0,
        help="also re-plan after this share of accounts get new scores; moved_share is then the re-plan's",
    )
    args = parser.parse_args()
    policy = Policy()
    territory_policy = policy.territories.model_copy(update={"tolerance": args.tolerance})
    rng = np.random.default_rng(args.seed)
    if args.input:
        accounts = read_export(args.input, args.potential_column, policy.tiers)
        reps = reps_for(args.input, accounts, args.reps, args.seed)
    else:
        accounts = make_accounts(args.accounts, rng)
        reps = make_reps(args.reps or 20, accounts, rng)
    start = time.perf_counter()
    with _stdout_to_stderr():
        plan = plan_territories(
            accounts, reps, territory_policy, policy.workload_weights, kmeans_baseline=False
        )
    seconds = time.perf_counter() - start
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    k = len(plan.territories)
    figures = {
        "accounts": len(accounts),
        "reps": k,
        "seed": args.seed,
        "tolerance": args.tolerance,
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak_rss_mb),
        "max_rel_dev": _rounded(plan.balance),
        # Over the shared territories only, against targets shared among them (as max_rel_dev when no
        # territory is dedicated to a single account).
        "max_rel_dev_shared": _rounded(plan.balance_shared),
        "max_rel_dev_lower_bound": _rounded(plan.balance_lower_bound),
        "dedicated_territories": plan.dedicated_territories,
        "compactness": round(plan.compactness, 1) if plan.compactness is not None else None,
        "moved_share": round(plan.moved_share, 4),
    }
    if args.replan_shift > 0:
        again = shifted(accounts, plan, args.replan_shift, args.seed)
        started = time.perf_counter()
        with _stdout_to_stderr():
            replan = plan_territories(
                again, reps, territory_policy, policy.workload_weights, kmeans_baseline=False
            )
        figures["moved_share"] = round(replan.moved_share, 4)
        figures["replan"] = {
            "score_shift_share": args.replan_shift,
            "seconds": round(time.perf_counter() - started, 2),
            "moved_share": round(replan.moved_share, 4),
            "moved_potential_share": round(replan.moved_potential_share, 4),
            "max_rel_dev": _rounded(replan.balance),
        }
    if plan.basis == "geo":
        with _stdout_to_stderr():
            found = run_baselines(accounts, plan, k, territory_policy, policy.workload_weights)
        figures["compactness_vs_kmeans"] = round(plan.compactness / found["kmeans"]["compactness"], 3)
        if "count_balanced_flow" in found:
            ratio = plan.compactness / found["count_balanced_flow"]["compactness"]
            figures["compactness_vs_count_balanced"] = round(ratio, 3)
        if "compactness" in found.get("exact_milp", {}):
            figures["objective_vs_exact_milp"] = round(
                plan.compactness / found["exact_milp"]["compactness"], 4
            )
        figures["baselines"] = found
    args.out.mkdir(parents=True, exist_ok=True)
    figures["map"] = str(
        territory_map(
            accounts,
            plan.assignments,
            reps,
            args.out / f"territory_map_{instance_name(args, k)}.png",
            f"{instance_name(args, k)}: {k} territories"
            + (f", potential = {args.potential_column}" if args.input else ""),
        )
    )
    assignments_path = args.out / f"territory_assignments_{instance_name(args, k)}.csv"
    plan.assignments.to_csv(assignments_path, index=False)
    figures["assignments"] = str(assignments_path)
    figures["solver"] = plan.solver
    figures["warnings"] = plan.warnings
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
