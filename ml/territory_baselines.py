"""Baselines the territory planner is measured against on the same accounts: plain k-means, a
count-balanced min-cost flow from k-means centres (OR-Tools, as k-means-constrained does), a greedy
balancer and, for small books, an exact MILP (HiGHS).

Every baseline returns a territory per account (accounts with coordinates only); `measure_assignment`
in `ml.territories` turns that into balance and compactness, the same way for every method.
"""

from __future__ import annotations

import numpy as np
from ortools.graph.python import min_cost_flow
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.spatial import cKDTree

from ml.territories import (
    EXACT_BAND_MARGIN,
    great_circle_km,
    group_centres,
    kmeans_assignment,
    with_whole_floor,
)

# Candidate centres per account in the flow, doubled until the flow is feasible: dense metros can
# have more accounts than room among their few nearest centres (NOTES.md: 14-20% with five).
FLOW_CANDIDATES = 16
# Flow costs are integers: metres keep the rounding far below any difference that matters.
METRES_PER_KM = 1000
GREEDY_CANDIDATES = 8
MILP_MAX_ACCOUNTS = 500
MILP_TIME_LIMIT_S = 120.0
MILP_ROUNDS = 5


def kmeans(xyz: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Plain k-means: compact, blind to balance."""
    return kmeans_assignment(xyz, k, seed)[0]


def count_balanced_flow(xyz: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Territories of equal account count (to one account) at least total distance to the k-means
    centres: a min-cost flow from accounts to their nearest centres, each centre taking its share."""
    _, centres = kmeans_assignment(xyz, k, seed)
    n = len(xyz)
    tree = cKDTree(centres)
    candidates = FLOW_CANDIDATES
    while True:
        m = min(candidates, k)
        near = tree.query(xyz, k=m)[1].reshape(n, m)
        territory = _flow(xyz, centres, near)
        if territory is not None or m == k:
            break
        candidates *= 2
    if territory is None:
        raise RuntimeError(f"the count-balanced flow found no assignment of {n} accounts to {k} centres")
    return territory


def _flow(xyz: np.ndarray, centres: np.ndarray, near: np.ndarray) -> np.ndarray | None:
    """Each account to one of its `near` centres, every centre taking floor(n/k) accounts and the
    remainder going one each to some centres; None when the candidates leave no feasible flow."""
    n, m = near.shape
    k = len(centres)
    base = n // k
    sink = n + k
    tails = np.r_[np.repeat(np.arange(n), m), n + np.arange(k)]
    heads = np.r_[n + near.ravel(), np.full(k, sink)]
    km = great_circle_km(np.repeat(xyz, m, axis=0), centres[near.ravel()])
    costs = np.r_[np.rint(km * METRES_PER_KM).astype(np.int64), np.zeros(k, dtype=np.int64)]
    flow = min_cost_flow.SimpleMinCostFlow()
    flow.add_arcs_with_capacity_and_unit_cost(tails, heads, np.ones(len(tails), dtype=np.int64), costs)
    flow.set_nodes_supplies(
        np.arange(n + k + 1), np.r_[np.ones(n, dtype=np.int64), np.full(k, -base), -(n - base * k)]
    )
    if flow.solve() != flow.OPTIMAL:
        return None
    used = flow.flows(np.arange(n * m)) > 0
    territory = np.empty(n, dtype=np.int64)
    territory[np.repeat(np.arange(n), m)[used]] = near.ravel()[used]
    return territory


def greedy_balancer(xyz: np.ndarray, criteria: np.ndarray, k: int, tolerance: float, seed: int) -> np.ndarray:
    """The spreadsheet planner's method: biggest accounts first, each to the nearest k-means centre
    still under its share (+ tolerance) on every criterion, else to the least-loaded territory."""
    _, centres = kmeans_assignment(xyz, k, seed)
    near = cKDTree(centres).query(xyz, k=min(GREEDY_CANDIDATES, k))[1].reshape(len(xyz), -1)
    cap = criteria.sum(axis=0) / k * (1 + tolerance)
    load = np.zeros((k, criteria.shape[1]))
    territory = np.empty(len(xyz), dtype=np.int64)
    for i in np.argsort(-criteria[:, 0], kind="stable"):
        fits = ((load[near[i]] + criteria[i]) <= cap).all(axis=1)
        t = near[i][np.argmax(fits)] if fits.any() else int(np.argmin((load / cap).max(axis=1)))
        territory[i] = t
        load[t] += criteria[i]
    return territory


def exact_milp(
    xyz: np.ndarray, criteria: np.ndarray, k: int, band: np.ndarray, start: np.ndarray
) -> np.ndarray | None:
    """The exact answer for a small book: every account-territory pair a binary, every criterion of
    every territory within `band` of the mean (one account at least, for whole-number criteria, as the
    planner does), least total distance to the territory centres; the
    centres move to their accounts and the MILP is solved again until nothing changes (Lloyd rounds
    with an exact assignment step). None when no assignment meets every band (the bands are hard here)."""
    n = len(xyz)
    if n > MILP_MAX_ACCOUNTS:
        raise ValueError(f"the exact MILP is for books of at most {MILP_MAX_ACCOUNTS} accounts, not {n}")
    territory = start.copy()
    objective = np.inf
    for _ in range(MILP_ROUNDS):
        centres = group_centres(xyz, np.ones(n), territory, k)
        km = great_circle_km(np.repeat(xyz, k, axis=0), np.tile(centres, (n, 1)))
        solved, value = _assignment_milp(km, criteria, k, band)
        if solved is None or value >= objective - 1e-9:
            break
        territory, objective = solved, value
    return None if np.isinf(objective) else territory


def _assignment_milp(
    km: np.ndarray, criteria: np.ndarray, k: int, band: np.ndarray
) -> tuple[np.ndarray | None, float]:
    """Least-distance assignment (x[i, t] binary, row-major) with every territory in its band."""
    n = len(criteria)
    mean = criteria.sum(axis=0) / k
    # The planner's own exact solve keeps the same hair inside the band.
    band = with_whole_floor(band * (1 - EXACT_BAND_MARGIN), mean[None, :])
    active = np.flatnonzero(mean > 0)
    pair = np.arange(n * k)
    account, terr = pair // k, pair % k
    one_each = sparse.csr_matrix((np.ones(n * k), (account, pair)), shape=(n, n * k))
    rows = (terr[:, None] * len(active) + np.arange(len(active))).ravel()
    loads = sparse.csr_matrix(
        (criteria[account][:, active].ravel(), (rows, np.repeat(pair, len(active)))),
        shape=(k * len(active), n * k),
    )
    lower = np.tile(mean[active] * (1 - band[active]), k)
    upper = np.tile(mean[active] * (1 + band[active]), k)
    result = milp(
        km,
        integrality=np.ones(n * k),
        bounds=Bounds(0, 1),
        constraints=[LinearConstraint(one_each, 1, 1), LinearConstraint(loads, lower, upper)],
        options={"time_limit": MILP_TIME_LIMIT_S},
    )
    if result.status != 0 or result.x is None:
        return None, np.inf
    chosen = result.x.reshape(n, k).argmax(axis=1)
    return chosen, float(result.fun)
