"""Tests for the baselines the planner is measured against, and for the territory pictures."""

from __future__ import annotations

import numpy as np

from ml import territory_baselines as baselines
from ml.policy import Policy, TerritoryPolicy
from ml.territories import account_geometry, measure_assignment, plan_territories
from ml.territory_report import balance_bars, territory_map
from tests.ml.test_territories import _accounts, _reps

WORKLOAD = Policy().workload_weights


def test_count_balanced_flow_gives_equal_counts_and_greedy_balances_better_than_kmeans():
    xyz, criteria = account_geometry(_accounts(3000, seed=30), WORKLOAD)
    flow = baselines.count_balanced_flow(xyz, 12, seed=1)
    assert sorted(np.bincount(flow, minlength=12)) == [250] * 12
    greedy = measure_assignment(xyz, criteria, baselines.greedy_balancer(xyz, criteria, 12, 0.05, 1), 12)
    kmeans = measure_assignment(xyz, criteria, baselines.kmeans(xyz, 12, 1), 12)
    assert greedy["potential"] < kmeans["potential"] and kmeans["compactness"] < greedy["compactness"]


def test_exact_milp_meets_every_band_and_the_plan_comes_close_to_it():
    accounts = _accounts(300, seed=31)
    plan = plan_territories(accounts, _reps(3, seed=31), TerritoryPolicy(tolerance=0.05), WORKLOAD)
    xyz, criteria = account_geometry(accounts, WORKLOAD)
    start = plan.assignments["rep_id"].map({"r000": 0, "r001": 1, "r002": 2}).to_numpy()
    exact = measure_assignment(
        xyz, criteria, baselines.exact_milp(xyz, criteria, 3, np.full(4, 0.05), start), 3
    )
    assert exact["potential"] <= 0.05 + 1e-6 and exact["account_count"] <= 0.05 + 1e-6
    assert exact["compactness"] <= plan.compactness + 1e-6
    assert plan.compactness <= 1.01 * exact["compactness"]
    # The exact step stops on its MIP gap, not on a clock: the same book gives the same plan.
    again = plan_territories(accounts, _reps(3, seed=31), TerritoryPolicy(tolerance=0.05), WORKLOAD)
    assert again.assignments["rep_id"].tolist() == plan.assignments["rep_id"].tolist()


def test_pictures_are_written_as_png(tmp_path):
    accounts, reps = _accounts(800, seed=32), _reps(4, seed=32)
    plan = plan_territories(accounts, reps, TerritoryPolicy(), WORKLOAD)
    for path in (
        territory_map(accounts, plan.assignments, reps, tmp_path / "map.png", "map"),
        balance_bars(plan.territories, TerritoryPolicy(), tmp_path / "bars.png", "bars"),
    ):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
