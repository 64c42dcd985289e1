"""Balanced sales territories: one per owner rep, by geography or vertical, refined with the HiGHS solver.

The plan is built in four steps:
1. Accounts are grouped into units (a parent with its children) so a family is never split.
2. A balanced recursive bisection cuts the units into one part per owner rep. Each cut sorts the units
   along the principal axis of their coordinates (geo) or along the industry order (vertical), and a small
   HiGHS LP over the units next to the cut makes both sides match their share of potential, workload and
   account count at once. This start is already balanced and is the fallback when a later solve fails.
3. Parts are matched to reps with `linear_sum_assignment` so current owners keep as many accounts as
   possible (and, for geo, reps stay near home).
4. A HiGHS LP moves items (units, or small cells of units at scale) between their territory and a few
   nearest territories to shorten distances, with every territory held inside a band around the mean of
   each criterion and under its rep's capacity; the few fractional items are settled by a HiGHS MIP.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, linear_sum_assignment, linprog, milp
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from sklearn.cluster import KMeans

from ml.policy import TerritoryPolicy

EARTH_RADIUS_KM = 6371.0088
CRITERIA = ("potential", "workload", "account_count")
POTENTIAL, WORKLOAD, COUNT = range(3)
TIERS = ("A", "B", "C")
# The LP holds every territory within a fifth of the policy tolerance around the mean and the integer
# repair within a quarter: the published plan stays well inside the tolerance, and the repair has
# room enough to be solved to optimality quickly.
BAND_SHARE_OF_TOLERANCE = 0.2
REPAIR_BAND_SHARE_OF_TOLERANCE = 0.25
# Candidate territories per item besides its own and its owner's: enough to reshape territories,
# few enough to keep the LP sparse (wider sets made the solve much slower without better plans).
NEAREST_CANDIDATES = 5
REFINE_ROUNDS = 6
# The LP moves cells of neighbouring units (one territory, one owner): this many per territory, and
# at most ITEM_BUDGET in all, keep it under a few seconds a round while boundaries stay fine-grained.
CELLS_PER_TERRITORY = 32
ITEM_BUDGET = 16_000
# Units above this share of a band's half-width get cells of their own and are rounded before the rest.
LARGE_UNIT_SHARE = 0.5
# Units per territory the integer repair may move besides the split ones: room to trade lumpy units.
FLEXIBLE_PER_TERRITORY = 16
LP_TIME_LIMIT_S = 60.0
MIP_TIME_LIMIT_S = 10.0
# The repair MIP stops once its answer is proven within this share of the best possible.
MIP_RELATIVE_GAP = 0.05
# A cut's LP sees this share of the node's units on each side of the cut (at least MIN_WINDOW units).
WINDOW_SHARE = 0.1
MIN_WINDOW = 16
# Price of one unit of share imbalance in a cut, against at most one per unit moved away from the cut.
CUT_SLACK_PENALTY = 1e4
# A cut missing some criterion's share by more than this is retried over the whole node.
CUT_SHORTFALL = 1e-4
# Price of a territory leaving its band by the mean of a criterion, as a multiple of moving every account
# of a mean territory to its costliest candidate: leaving a band only pays when no move can avoid it.
BAND_SLACK_PENALTY = 10.0
CAPACITY_PENALTY_FACTOR = 10.0
# The MIP puts balance far above distance: a slack-for-distance trade makes the MIP much harder to prove
# optimal, and at that stage balance is what is left to fix.
MIP_PENALTY_FACTOR = 1e3
# Keeping an account with its current owner is worth this many typical account-to-centre distances.
CONTINUITY_WEIGHT = 0.5
# Putting an account in a territory that holds none of its industry costs this many typical distances.
COHESION_WEIGHT = 1.0
# Weight of the rep's home distance (relative to the largest) against the share of accounts kept.
HOME_DISTANCE_WEIGHT = 0.25
# k-means for the baseline is fitted on at most this many accounts and then assigns all of them.
KMEANS_SAMPLE = 200_000
FRACTIONAL_EPS = 1e-6
UNKNOWN_INDUSTRY = -1


@dataclass
class TerritoryPlan:
    """A territory plan: assignments, territory totals, balance and how the solver fared."""

    assignments: pd.DataFrame
    territories: pd.DataFrame
    balance: dict[str, float]
    baseline: dict[str, float]
    compactness: float | None
    compactness_vs_kmeans: float | None
    basis: str
    solver: dict[str, object]
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Accounts:
    """Per-account arrays the planner needs, aligned with the input rows."""

    ids: np.ndarray
    xyz: np.ndarray
    has_geo: np.ndarray
    industry: np.ndarray
    criteria: np.ndarray
    tier: np.ndarray
    owner: np.ndarray
    previous: np.ndarray
    parent: np.ndarray


@dataclass
class _Units:
    """Units (a parent with all its children, or a lone account) the planner never splits."""

    of_account: np.ndarray
    criteria: np.ndarray
    xyz: np.ndarray
    has_geo: np.ndarray
    industry: np.ndarray
    owner: np.ndarray
    sequence: np.ndarray

    @property
    def size(self) -> int:
        return len(self.criteria)


@dataclass
class _Problem:
    """What every solve shares: territory count, bands, capacities and cost scales."""

    k: int
    mean: np.ndarray
    band: float
    repair_band: float
    capacity: np.ndarray
    typical_km: float


@dataclass
class _SolverLog:
    """Solver outcomes collected across the steps of one plan."""

    steps: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


def plan_territories(
    accounts: pd.DataFrame,
    reps: pd.DataFrame,
    policy: TerritoryPolicy,
    workload_weights: dict[str, float],
) -> TerritoryPlan:
    """Assign every account to exactly one owner rep's territory, balanced and compact."""
    warnings: list[str] = []
    owners = _owner_reps(reps, policy, warnings)
    acc = _account_arrays(accounts, owners, workload_weights)
    k = len(owners)
    capacity = _capacities(owners, policy, len(acc.ids), warnings)
    basis = _choose_basis(policy, acc, warnings)
    units = _units(acc)
    log = _SolverLog()
    problem = _problem(units, capacity, policy.tolerance)
    territory, neighbours, present = _start(units, basis, k, owners, policy.tolerance, log)
    if k > 1 and units.size > 0:
        territory = _refine(units, territory, neighbours, present, problem, basis, log)
    account_territory = territory[units.of_account]
    return _build_plan(acc, owners, account_territory, capacity, basis, log, policy, warnings)


# ---------------------------------------------------------------------------------------------------
# Inputs


def _owner_reps(reps: pd.DataFrame, policy: TerritoryPolicy, warnings: list[str]) -> pd.DataFrame:
    """Reps who own a territory, sorted by rep_id: those with an owner role, or every rep if none has."""
    if reps.empty:
        raise ValueError("the reps table has no rows: territories need at least one rep to own them")
    roles = reps["role"] if "role" in reps else pd.Series(None, index=reps.index)
    owners = reps[roles.isin(policy.owner_roles)]
    if owners.empty:
        warnings.append(
            f"no rep has an owner role {policy.owner_roles}; every one of the {len(reps)} reps owns a territory"
        )
        owners = reps
    owners = owners.assign(rep_id=owners["rep_id"].astype(str)).sort_values("rep_id", kind="stable")
    duplicated = owners["rep_id"].duplicated()
    if duplicated.any():
        raise ValueError(f"reps table repeats rep_id {owners['rep_id'][duplicated].iloc[0]!r}; rep_id must be unique")
    return owners.reset_index(drop=True)


def _account_arrays(
    accounts: pd.DataFrame, owners: pd.DataFrame, workload_weights: dict[str, float]
) -> _Accounts:
    """Validate the accounts frame and turn it into aligned NumPy arrays."""
    ids = accounts["account_id"].astype(str).to_numpy()
    if pd.Index(ids).has_duplicates:
        raise ValueError("accounts repeat an account_id; every account must appear once")
    lat, lon = (pd.to_numeric(accounts[c], errors="coerce").to_numpy(dtype=float) for c in ("latitude", "longitude"))
    has_geo = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
    potential = pd.to_numeric(accounts["potential"], errors="coerce").fillna(0.0).to_numpy(dtype=float)
    if (potential < 0).any():
        raise ValueError(f"{int((potential < 0).sum())} accounts have a negative potential; potential must be >= 0")
    tiers = accounts["tier"].astype("string")
    unknown = sorted(set(tiers.dropna().unique()) - set(workload_weights)) + (["null"] if tiers.isna().any() else [])
    if unknown:
        raise ValueError(f"tier(s) {unknown} have no workload weight; add them to workload_weights in the policy")
    workload = tiers.map(workload_weights).to_numpy(dtype=float)
    criteria = np.column_stack([potential, workload, np.ones(len(ids))])
    industry = pd.factorize(accounts["industry"].astype("string"), sort=True)[0]
    previous = accounts["owner_rep_id"].astype("string")
    owner = pd.Index(owners["rep_id"]).get_indexer(previous.fillna(""))
    parent = pd.Index(ids).get_indexer(accounts["parent_account_id"].astype("string").fillna(""))
    return _Accounts(
        ids=ids,
        xyz=_to_xyz(lat, lon, has_geo),
        has_geo=has_geo,
        industry=industry,
        criteria=criteria,
        tier=pd.Categorical(tiers, categories=TIERS).codes,
        owner=owner,
        previous=previous.astype(object).where(previous.notna(), None).to_numpy(),
        parent=parent,
    )


def _capacities(owners: pd.DataFrame, policy: TerritoryPolicy, n_accounts: int, warnings: list[str]) -> np.ndarray:
    """Account capacity per owner rep (inf when unbounded), scaled up when the total is below the book."""
    raw = owners["capacity_accounts"] if "capacity_accounts" in owners else pd.Series(np.nan, index=owners.index)
    capacity = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    default = np.inf if policy.default_capacity_accounts is None else float(policy.default_capacity_accounts)
    capacity = np.where(np.isnan(capacity), default, capacity)
    total = capacity.sum()
    if total < n_accounts:
        scale = n_accounts / max(total, 1.0)
        capacity = np.ceil(np.maximum(capacity, 1.0) * scale)
        warnings.append(
            f"rep capacities add up to {total:.0f} accounts but there are {n_accounts}; "
            f"capacities were scaled up by {scale:.2f}"
        )
    return capacity


def _choose_basis(policy: TerritoryPolicy, acc: _Accounts, warnings: list[str]) -> str:
    """Geo or vertical, as the policy says; 'auto' is geo when enough accounts have coordinates."""
    geo_share = float(acc.has_geo.mean()) if len(acc.has_geo) else 0.0
    if policy.basis == "vertical":
        return "vertical"
    if policy.basis == "geo" and geo_share == 0:
        warnings.append("basis 'geo' was asked for but no account has coordinates; territories are vertical")
        return "vertical"
    if policy.basis == "auto" and geo_share < policy.min_geo_share:
        return "vertical"
    if geo_share < 1:
        warnings.append(
            f"{int((~acc.has_geo).sum())} accounts have no coordinates; they are shared out by industry"
        )
    return "geo"


def _to_xyz(lat: np.ndarray, lon: np.ndarray, has_geo: np.ndarray) -> np.ndarray:
    """Unit vectors on the sphere (NaN rows where coordinates are missing): distances work worldwide."""
    phi, lam = np.radians(np.where(has_geo, lat, 0.0)), np.radians(np.where(has_geo, lon, 0.0))
    xyz = np.column_stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)])
    xyz[~has_geo] = np.nan
    return xyz


def _to_lat_lon(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude in degrees of (not necessarily unit) vectors."""
    lat = np.degrees(np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1])))
    return lat, np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0]))


def _km(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Great-circle distance in km between rows of unit vectors (haversine through the chord length)."""
    chord = np.linalg.norm(a - b, axis=1)
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.clip(chord / 2, 0, 1))


def _unit_vectors(sums: np.ndarray) -> np.ndarray:
    """Normalise summed vectors onto the sphere; zero sums become NaN."""
    norm = np.linalg.norm(sums, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, sums / norm, np.nan)


def _group_centres(xyz: np.ndarray, weight: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Weighted centre on the sphere of each group (NaN for groups without coordinates)."""
    ok = np.isfinite(xyz[:, 0])
    sums = np.column_stack([
        np.bincount(group[ok], weights=weight[ok] * xyz[ok, d], minlength=n_groups) for d in range(3)
    ])
    return _unit_vectors(sums)


# ---------------------------------------------------------------------------------------------------
# Units


def _units(acc: _Accounts) -> _Units:
    """Group each parent with its children (at any depth) into one unit with summed criteria."""
    n = len(acc.ids)
    linked = np.flatnonzero(acc.parent >= 0)
    if linked.size:
        graph = sparse.coo_matrix((np.ones(linked.size), (linked, acc.parent[linked])), shape=(n, n))
        n_units, label = connected_components(graph, directed=False)
    else:
        n_units, label = n, np.arange(n)
    criteria = np.column_stack([np.bincount(label, weights=acc.criteria[:, j], minlength=n_units) for j in range(3)])
    xyz = _group_centres(acc.xyz, np.ones(n), label, n_units)
    # The unit's root (the member without a parent, the biggest one if a cycle hides it) names its industry
    # and its place in the industry order.
    first = np.lexsort((-acc.criteria[:, POTENTIAL], acc.parent >= 0, label))
    root = first[_first_of_runs(label[first])]
    return _Units(
        of_account=label,
        criteria=criteria,
        xyz=xyz,
        has_geo=np.isfinite(xyz[:, 0]),
        industry=acc.industry[root],
        owner=_majority(label, acc.owner, n_units),
        sequence=_sequence(acc.industry[root], acc.ids[root]),
    )


def _majority(group: np.ndarray, value: np.ndarray, n_groups: int) -> np.ndarray:
    """Most frequent non-negative value per group (-1 when a group has none)."""
    out = np.full(n_groups, -1)
    ok = value >= 0
    if not ok.any():
        return out
    pairs, counts = np.unique(np.column_stack([group[ok], value[ok]]), axis=0, return_counts=True)
    best = np.lexsort((-counts, pairs[:, 0]))
    first = best[_first_of_runs(pairs[best, 0])]
    out[pairs[first, 0]] = pairs[first, 1]
    return out


def _sequence(industry: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Position of each unit in the vertical order: by industry (unknown last), then by account id."""
    group = np.where(industry == UNKNOWN_INDUSTRY, industry.max(initial=0) + 1, industry)
    order = np.lexsort((key, group))
    position = np.empty(len(order), dtype=float)
    position[order] = np.arange(len(order))
    return position


def _problem(units: _Units, capacity: np.ndarray, tolerance: float) -> _Problem:
    """Bands around the mean of each criterion, capacities and the cost scales the LPs share."""
    k = len(capacity)
    return _Problem(
        k=k,
        mean=units.criteria.sum(axis=0) / k,
        band=tolerance * BAND_SHARE_OF_TOLERANCE,
        repair_band=tolerance * REPAIR_BAND_SHARE_OF_TOLERANCE,
        capacity=capacity,
        typical_km=1.0,
    )


# ---------------------------------------------------------------------------------------------------
# Start: balanced recursive bisection, parts matched to reps


def _start(
    units: _Units, basis: str, k: int, owners: pd.DataFrame, tolerance: float, log: _SolverLog
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Balanced start: territory per unit, each territory's two neighbours in the industry order, and
    which industries each territory holds.

    Geo units are cut by geography; units without coordinates (all of them for a vertical plan) are cut
    into runs of the industry order. Both sets are balanced on their own, so any pairing of a geo part
    with a run is balanced too; each set is then matched to the reps separately.
    """
    territory = np.full(units.size, -1)
    neighbours = np.full((k, 2), -1)
    geo = units.has_geo & (basis == "geo")
    if geo.any():
        idx = np.flatnonzero(geo)
        parts = _bisect(idx, k, units, True, tolerance, log)
        territory[idx] = _match(parts, idx, units, owners, k)[parts]
    if (~geo).any():
        idx = np.flatnonzero(~geo)
        parts = _bisect(idx, k, units, False, tolerance, log)
        rep_of_part = _match(parts, idx, units, None, k)
        territory[idx] = rep_of_part[parts]
        neighbours[rep_of_part[1:], 0] = rep_of_part[:-1]
        neighbours[rep_of_part[:-1], 1] = rep_of_part[1:]
    n_industries = units.industry.max(initial=UNKNOWN_INDUSTRY) + 2
    present = np.zeros((k, n_industries), dtype=bool)
    present[territory[~geo], units.industry[~geo] + 1] = True
    return territory, neighbours, present


def _bisect(idx: np.ndarray, k: int, units: _Units, geometric: bool, tolerance: float, log: _SolverLog) -> np.ndarray:
    """Part (0..k-1) of each unit in idx: halve the set recursively, each half matching its share of reps."""
    part = np.zeros(len(idx), dtype=int)
    stack = [(np.arange(len(idx)), k, 0)]
    while stack:
        pos, kk, offset = stack.pop()
        if kk == 1 or len(pos) == 0:
            part[pos] = offset
            continue
        k_left = kk // 2
        order, left = _cut(idx[pos], k_left / kk, units, geometric, tolerance, log)
        stack.append((pos[order][left], k_left, offset))
        stack.append((pos[order][~left], kk - k_left, offset + k_left))
    return part


def _cut(
    ids: np.ndarray, share: float, units: _Units, geometric: bool, tolerance: float, log: _SolverLog
) -> tuple[np.ndarray, np.ndarray]:
    """Sort units along the cut direction and pick the ones going left (a mask in sorted order)."""
    if geometric:
        projection = _principal_projection(units.xyz[ids], units.criteria[ids, COUNT])
    else:
        projection = units.sequence[ids]
    order = np.argsort(projection, kind="stable")
    shares = _shares(units.criteria[ids[order]])
    cumulative = np.cumsum(shares.mean(axis=1))
    cut = int(np.searchsorted(cumulative, share))
    if not geometric:
        boundary = _industry_boundary(units.industry[ids[order]], cumulative, share, tolerance)
        if boundary is not None:
            return order, np.arange(len(ids)) < boundary
    return order, _balance_cut(shares, cut, share, log)


def _principal_projection(xyz: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Coordinates along the direction in which the points spread most."""
    centred = xyz - np.average(xyz, axis=0, weights=weight)
    axis = np.linalg.eigh((centred * weight[:, None]).T @ centred)[1][:, -1]
    return centred @ axis


def _shares(criteria: np.ndarray) -> np.ndarray:
    """Each criterion as a share of its total, dropping criteria that are zero everywhere."""
    totals = criteria.sum(axis=0)
    active = totals > 0
    return criteria[:, active] / totals[active]


def _industry_boundary(industry: np.ndarray, cumulative: np.ndarray, share: float, tolerance: float) -> int | None:
    """Cut position at an industry change close enough to the balanced cut, if there is one."""
    boundaries = np.flatnonzero(industry[1:] != industry[:-1]) + 1
    if boundaries.size == 0:
        return None
    deviation = np.abs(cumulative[boundaries - 1] - share)
    best = int(np.argmin(deviation))
    # Snap only when each side stays within half the solver band of its share.
    allowed = tolerance * BAND_SHARE_OF_TOLERANCE / 2 * min(share, 1 - share)
    return int(boundaries[best]) if deviation[best] <= allowed else None


def _balance_cut(shares: np.ndarray, cut: int, share: float, log: _SolverLog) -> np.ndarray:
    """Left mask for a cut: units before a window go left, and an LP over the window picks the rest so
    that the left side holds `share` of every criterion while staying as close to the cut as it can."""
    m = len(shares)
    half = max(MIN_WINDOW, int(WINDOW_SHARE * m))
    left, short = _window_cut(shares, cut, share, half, log)
    # A window too narrow to balance (say a whale sits outside it) is widened to the whole node once.
    if short and half < m:
        left, _ = _window_cut(shares, cut, share, m, log)
    return left


def _window_cut(shares: np.ndarray, cut: int, share: float, half: int, log: _SolverLog) -> tuple[np.ndarray, bool]:
    """Left mask from the LP over `half` units on each side of the cut, and whether it fell short."""
    m, n_criteria = shares.shape
    lo, hi = max(0, cut - half), min(m, cut + half)
    width = hi - lo
    eye = np.eye(n_criteria)
    cost = np.r_[(np.arange(lo, hi) - cut + 0.5) / half, np.full(2 * n_criteria, CUT_SLACK_PENALTY)]
    result = _run_lp(
        log, "bisection cut", cost,
        A_eq=np.hstack([shares[lo:hi].T, eye, -eye]), b_eq=share - shares[:lo].sum(axis=0),
        bounds=[(0, 1)] * width + [(0, None)] * (2 * n_criteria),
    )
    if result is None:
        return np.arange(m) < cut, True
    left = np.arange(m) < lo
    left[lo:hi] = result[:width] > 0.5
    return left, bool(result[width:].sum() > CUT_SHORTFALL)


def _match(parts: np.ndarray, idx: np.ndarray, units: _Units, owners: pd.DataFrame | None, k: int) -> np.ndarray:
    """Rep index for each part: most accounts kept by their current owner, then (geo) reps near home."""
    counts = units.criteria[idx, COUNT]
    owned = units.owner[idx] >= 0
    overlap = np.bincount(
        parts[owned] * k + units.owner[idx][owned], weights=counts[owned], minlength=k * k
    ).reshape(k, k)
    size = np.bincount(parts, weights=counts, minlength=k)
    cost = -overlap / np.maximum(size, 1.0)[:, None]
    if owners is not None:
        cost = cost + HOME_DISTANCE_WEIGHT * _home_distance(parts, idx, units, owners, k)
    return linear_sum_assignment(cost)[1]


def _home_distance(parts: np.ndarray, idx: np.ndarray, units: _Units, owners: pd.DataFrame, k: int) -> np.ndarray:
    """Part-by-rep distance from the part centre to the rep's home, scaled to 0..1 (0 without a home)."""
    if not {"latitude", "longitude"} <= set(owners.columns):
        return np.zeros((k, k))
    lat, lon = (pd.to_numeric(owners[c], errors="coerce").to_numpy(dtype=float) for c in ("latitude", "longitude"))
    home = _to_xyz(lat, lon, np.isfinite(lat) & np.isfinite(lon))
    centres = _group_centres(units.xyz[idx], units.criteria[idx, COUNT], parts, k)
    distance = np.nan_to_num(np.linalg.norm(centres[:, None, :] - home[None, :, :], axis=2))
    return distance / max(distance.max(), 1e-12)


# ---------------------------------------------------------------------------------------------------
# Refinement: HiGHS LP over a sparse candidate set, then integer repair of the fractional items


@dataclass
class _Items:
    """What the LP moves: units, or at scale cells of units from one territory, owner and industry."""

    of_unit: np.ndarray
    criteria: np.ndarray
    xyz: np.ndarray
    geo: np.ndarray
    industry: np.ndarray
    owner: np.ndarray
    large: np.ndarray

    @property
    def size(self) -> int:
        return len(self.criteria)


def _refine(
    units: _Units,
    territory: np.ndarray,
    neighbours: np.ndarray,
    present: np.ndarray,
    problem: _Problem,
    basis: str,
    log: _SolverLog,
) -> np.ndarray:
    """Lloyd-style rounds: recentre, then let the LP move items to nearer territories within the bands."""
    geo = units.has_geo & (basis == "geo")
    problem.typical_km = _typical_km(units, geo, territory, problem.k)
    items = _items(units, geo, territory, problem)
    current = _majority(items.of_unit, territory, items.size)
    solution = None
    support = (np.arange(items.size), current)
    for round_no in range(1, REFINE_ROUNDS + 1):
        centres = _group_centres(units.xyz[geo], units.criteria[geo, COUNT], territory[geo], problem.k)
        rows, cols = _candidates(items, current, centres, neighbours, support)
        cost = _pair_costs(items, rows, cols, centres, present, problem)
        x = _solve(log, f"refinement LP round {round_no}", rows, cols, cost, items.criteria, None, problem)
        if x is None:
            break
        solution = (rows, cols, cost, x, centres)
        # The next round keeps this answer's pairs, so this answer stays feasible there.
        support = (rows[x > FRACTIONAL_EPS], cols[x > FRACTIONAL_EPS])
        best = _best_pair(rows, cols, x, items.size)
        if np.array_equal(best, current):
            break
        current = best
        territory = current[items.of_unit]
    if solution is None:
        return territory
    solution = _round_large_items(items, solution, problem, log)
    return _repair(units, items, geo, solution, neighbours, present, problem, log)


def _round_large_items(
    items: _Items, solution: tuple[np.ndarray, ...], problem: _Problem, log: _SolverLog
) -> tuple[np.ndarray, ...]:
    """If the LP split a large unit, pin every large unit to its largest share and re-solve around them,
    so that only small units are left for the integer repair (a split whale rounds with a big error)."""
    rows, cols, cost, x, centres = solution
    if not (_fractional(rows, x, items.size) & items.large).any():
        return solution
    best = _best_pair(rows, cols, x, items.size)
    keep = ~items.large[rows] | (cols == best[rows])
    rows, cols, cost = rows[keep], cols[keep], cost[keep]
    x = _solve(log, "LP around pinned large units", rows, cols, cost, items.criteria, None, problem)
    return solution if x is None else (rows, cols, cost, x, centres)


def _typical_km(units: _Units, geo: np.ndarray, territory: np.ndarray, k: int) -> float:
    """Median distance from a geo unit to its territory centre: the yardstick for every cost weight."""
    if not geo.any():
        return 1.0
    centres = _group_centres(units.xyz[geo], units.criteria[geo, COUNT], territory[geo], k)
    median = float(np.median(_km(units.xyz[geo], centres[territory[geo]])))
    return median if median > 0 else 1.0


def _items(units: _Units, geo: np.ndarray, territory: np.ndarray, problem: _Problem) -> _Items:
    """Cells of neighbouring units in one territory, split further by owner and (without coordinates)
    by industry; large units are cells of their own."""
    k = problem.k
    levels = int(np.clip(np.floor(np.log2(ITEM_BUDGET / k)), 0, np.log2(CELLS_PER_TERRITORY)))
    cell = np.zeros(units.size, dtype=np.int64)
    cell[geo] = _geo_cells(units.xyz[geo], units.criteria[geo, COUNT], territory[geo], levels)
    cell[~geo] = _sequence_cells(units.sequence[~geo], territory[~geo], 2**levels)
    # Cells never mix industries of units without coordinates, nor owners when that stays affordable.
    industry = np.where(geo, UNKNOWN_INDUSTRY - 1, units.industry)
    large = _large_units(units, problem)
    key = np.column_stack([territory, cell, industry, np.where(large, np.arange(units.size), -1), units.owner])
    _, of_unit = np.unique(key, axis=0, return_inverse=True)
    if of_unit.max() + 1 > 2 * ITEM_BUDGET:
        _, of_unit = np.unique(key[:, :4], axis=0, return_inverse=True)
    of_unit = of_unit.ravel()
    n_items = int(of_unit.max()) + 1
    count = units.criteria[:, COUNT]
    return _Items(
        of_unit=of_unit,
        criteria=np.column_stack([np.bincount(of_unit, units.criteria[:, j], n_items) for j in range(3)]),
        xyz=_group_centres(units.xyz, count, of_unit, n_items),
        geo=np.bincount(of_unit, geo, n_items) > 0,
        industry=_majority(of_unit, units.industry, n_items),
        owner=_majority(of_unit, units.owner, n_items),
        large=np.bincount(of_unit, large, n_items) > 0,
    )


def _large_units(units: _Units, problem: _Problem) -> np.ndarray:
    """Units holding more than LARGE_UNIT_SHARE of the band width of some criterion."""
    return (units.criteria > LARGE_UNIT_SHARE * problem.band * problem.mean).any(axis=1)


def _geo_cells(xyz: np.ndarray, weight: np.ndarray, group: np.ndarray, levels: int) -> np.ndarray:
    """Cell of each point: every group halved `levels` times along its principal axis (vectorised)."""
    cell = group.astype(np.int64)
    for _ in range(levels):
        n = int(cell.max()) + 1
        total = np.bincount(cell, weight, n)
        mean = np.column_stack([np.bincount(cell, weight * xyz[:, d], n) for d in range(3)])
        mean /= np.maximum(total, 1e-12)[:, None]
        centred = xyz - mean[cell]
        cov = np.zeros((n, 3, 3))
        for a in range(3):
            for b in range(a, 3):
                cov[:, a, b] = cov[:, b, a] = np.bincount(cell, weight * centred[:, a] * centred[:, b], n)
        axis = np.linalg.eigh(cov)[1][:, :, -1]
        projection = np.einsum("ij,ij->i", centred, axis[cell])
        order = np.lexsort((projection, cell))
        before = np.cumsum(weight[order]) - weight[order]
        start = np.r_[0.0, np.cumsum(total)][cell[order]]
        right = np.empty(len(cell), dtype=np.int64)
        right[order] = (before - start + weight[order] / 2) > total[cell[order]] / 2
        cell = 2 * cell + right
    return cell


def _sequence_cells(sequence: np.ndarray, group: np.ndarray, per_group: int) -> np.ndarray:
    """Cell of each unit: its group's run of the industry order cut into `per_group` equal blocks."""
    order = np.lexsort((sequence, group))
    size = np.bincount(group)
    rank = np.arange(len(order)) - np.r_[0, np.cumsum(size)][group[order]]
    cell = np.empty(len(order), dtype=np.int64)
    cell[order] = group[order] * per_group + rank * per_group // np.maximum(size[group[order]], 1)
    return cell


def _candidates(
    items: _Items, current: np.ndarray, centres: np.ndarray, neighbours: np.ndarray,
    support: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate (item, territory) pairs: the given support (the previous answer), stay, the current
    owner's territory, the nearest territory centres (geo) or the neighbouring runs of the industry
    order (no coordinates)."""
    every = np.arange(items.size)
    rows, cols = [support[0], every], [support[1], current]
    owned = items.owner >= 0
    rows.append(every[owned])
    cols.append(items.owner[owned])
    valid = np.flatnonzero(np.isfinite(centres[:, 0]))
    if items.geo.any() and valid.size:
        n_near = min(NEAREST_CANDIDATES, valid.size)
        near = cKDTree(centres[valid]).query(items.xyz[items.geo], k=n_near)[1].reshape(-1, n_near)
        rows.append(np.repeat(every[items.geo], n_near))
        cols.append(valid[near].ravel())
    for side in range(2):
        neighbour = neighbours[current, side]
        ok = ~items.geo & (neighbour >= 0)
        rows.append(every[ok])
        cols.append(neighbour[ok])
    k = len(neighbours)
    pairs = np.unique(np.concatenate(rows).astype(np.int64) * k + np.concatenate(cols))
    return pairs // k, pairs % k


def _pair_costs(
    items: _Items, rows: np.ndarray, cols: np.ndarray, centres: np.ndarray, present: np.ndarray, problem: _Problem
) -> np.ndarray:
    """Cost of each pair, in typical distances per account: distance to the centre (geo), missing the
    territory's industries (no coordinates), and leaving the current owner."""
    count = items.criteria[rows, COUNT]
    geo = items.geo[rows]
    cost = np.zeros(len(rows))
    cost[geo] = _km(items.xyz[rows[geo]], centres[cols[geo]]) / problem.typical_km
    cost[~geo] = COHESION_WEIGHT * ~present[cols[~geo], items.industry[rows[~geo]] + 1]
    owner = items.owner[rows]
    cost += CONTINUITY_WEIGHT * ((owner >= 0) & (owner != cols))
    return count * cost


def _solve(
    log: _SolverLog,
    step: str,
    rows: np.ndarray,
    cols: np.ndarray,
    cost: np.ndarray,
    criteria: np.ndarray,
    fixed: np.ndarray | None,
    problem: _Problem,
    integral: bool = False,
) -> np.ndarray | None:
    """Share of each candidate pair in the best balanced assignment (None when the solver fails).

    The MIP (integral) gets the wider repair band. Bands and capacities are elastic: a territory may leave its band at a high price per unit of
    deviation, so the model always has a solution and small or lumpy books report their deviation
    instead of failing.
    """
    k, n_crit = problem.k, len(CRITERIA)
    n_pairs = len(rows)
    item, pair_item = np.unique(rows, return_inverse=True)
    load = criteria[rows]
    fixed = np.zeros((k, n_crit)) if fixed is None else fixed
    band_rows = cols[:, None] * n_crit + np.arange(n_crit)
    bounded = np.flatnonzero(np.isfinite(problem.capacity))
    cap_row = np.full(k, -1)
    cap_row[bounded] = np.arange(bounded.size)
    has_cap = cap_row[cols] >= 0
    n_band = k * n_crit
    slack_cols = n_pairs + np.arange(2 * n_band + bounded.size)
    slack_scale = np.r_[np.tile(problem.mean, 2 * k), np.full(bounded.size, max(problem.mean[COUNT], 1.0))]
    a_ub = sparse.csr_matrix(
        (
            np.r_[load.ravel(), -load.ravel(), load[has_cap, COUNT], -slack_scale],
            (
                np.r_[band_rows.ravel(), n_band + band_rows.ravel(), 2 * n_band + cap_row[cols[has_cap]],
                      np.arange(2 * n_band + bounded.size)],
                np.r_[np.repeat(np.arange(n_pairs), n_crit), np.repeat(np.arange(n_pairs), n_crit),
                      np.flatnonzero(has_cap), slack_cols],
            ),
        ),
        shape=(2 * n_band + bounded.size, n_pairs + slack_cols.size),
    )
    band = problem.repair_band if integral else problem.band
    b_ub = np.r_[(problem.mean * (1 + band) - fixed).ravel(), (fixed - problem.mean * (1 - band)).ravel(),
                 problem.capacity[bounded] - fixed[bounded, COUNT]]
    a_eq = sparse.csr_matrix(
        (np.ones(n_pairs), (pair_item, np.arange(n_pairs))), shape=(len(item), n_pairs + slack_cols.size)
    )
    penalty = _slack_penalty(cost, load[:, COUNT], problem) * (MIP_PENALTY_FACTOR if integral else 1.0)
    c = np.r_[cost, np.full(2 * n_band, penalty), np.full(bounded.size, penalty * CAPACITY_PENALTY_FACTOR)]
    if integral:
        x = _run_mip(log, step, c, a_ub, b_ub, a_eq, np.ones(len(item)), n_pairs)
    else:
        x = _run_lp(log, step, c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=np.ones(len(item)), bounds=(0, None))
    return None if x is None else np.clip(x[:n_pairs], 0.0, 1.0)


def _slack_penalty(cost: np.ndarray, count: np.ndarray, problem: _Problem) -> float:
    """Price of one mean-sized deviation from a band, above any rearrangement of accounts that avoids it."""
    per_account = cost / np.maximum(count, 1.0)
    spread = float(per_account.max() - per_account.min()) if len(cost) else 0.0
    return BAND_SLACK_PENALTY * max(problem.mean[COUNT], 1.0) * max(spread, 1.0)


def _run_lp(log: _SolverLog, step: str, c: np.ndarray, **model) -> np.ndarray | None:
    """Solve an LP with HiGHS; the solution only when HiGHS reports it optimal."""
    started = time.perf_counter()
    result = linprog(c, method="highs", options={"time_limit": LP_TIME_LIMIT_S}, **model)
    log.seconds += time.perf_counter() - started
    return _checked(log, step, result)


def _run_mip(
    log: _SolverLog, step: str, c: np.ndarray, a_ub: sparse.csr_matrix, b_ub: np.ndarray,
    a_eq: sparse.csr_matrix, b_eq: np.ndarray, n_integer: int,
) -> np.ndarray | None:
    """Solve the MIP with HiGHS (binary pair variables, continuous slacks); only an optimal answer counts."""
    started = time.perf_counter()
    integrality = np.r_[np.ones(n_integer), np.zeros(len(c) - n_integer)]
    result = milp(
        c,
        integrality=integrality,
        bounds=Bounds(0, np.r_[np.ones(n_integer), np.full(len(c) - n_integer, np.inf)]),
        constraints=[LinearConstraint(a_ub, -np.inf, b_ub), LinearConstraint(a_eq, b_eq, b_eq)],
        options={"time_limit": MIP_TIME_LIMIT_S, "mip_rel_gap": MIP_RELATIVE_GAP},
    )
    log.seconds += time.perf_counter() - started
    return _checked(log, step, result)


def _checked(log: _SolverLog, step: str, result) -> np.ndarray | None:
    """The solver's x if its status says optimal, else None with the failure logged (never zeros)."""
    if result.status == 0 and result.x is not None:
        if step not in log.steps:
            log.steps.append(step)
        return result.x
    log.failures.append(f"{step}: HiGHS status {result.status} ({result.message})")
    return None


def _best_pair(rows: np.ndarray, cols: np.ndarray, x: np.ndarray, n_items: int) -> np.ndarray:
    """Territory with the largest share for each item."""
    order = np.lexsort((-x, rows))
    first = order[_first_of_runs(rows[order])]
    best = np.empty(n_items, dtype=np.int64)
    best[rows[first]] = cols[first]
    return best


def _fractional(rows: np.ndarray, x: np.ndarray, n_items: int) -> np.ndarray:
    """Items the LP split between territories."""
    largest = np.zeros(n_items)
    np.maximum.at(largest, rows, x)
    return largest < 1 - FRACTIONAL_EPS


def _repair(
    units: _Units,
    items: _Items,
    geo: np.ndarray,
    solution: tuple[np.ndarray, ...],
    neighbours: np.ndarray,
    present: np.ndarray,
    problem: _Problem,
    log: _SolverLog,
) -> np.ndarray:
    """Integer assignment from the last LP.

    Cells the LP split are opened into their units and an LP over just those units shares them out.
    Units still split go to their largest share unless that leaves a territory outside the repair band
    or over capacity; then a MIP rounds them, and if that is not enough either, a second MIP also lets
    the units each territory can give up most cheaply move, trading a lumpy unit against a few small
    ones. On a solver failure the rounding before it is kept.
    """
    rows, cols, _, x, centres = solution
    territory = _best_pair(rows, cols, x, items.size)[items.of_unit]
    free = np.flatnonzero(_fractional(rows, x, items.size)[items.of_unit])
    keep = x > FRACTIONAL_EPS
    rows, cols = _open_cells(items, rows[keep], cols[keep], free)
    unit_items = _Items(
        np.arange(units.size), units.criteria, units.xyz, geo, units.industry, units.owner,
        _large_units(units, problem),
    )
    if free.size > np.unique(items.of_unit[free]).size:
        cost = _pair_costs(unit_items, rows, cols, centres, present, problem)
        fixed = _fixed_totals(units, territory, free, problem.k)
        x = _solve(log, "repair LP over split cells", rows, cols, cost, units.criteria, fixed, problem)
        if x is None:
            return territory
        territory[free] = _best_pair(rows, cols, x, units.size)[free]
        still = _fractional(rows, x, units.size)[rows] & (x > FRACTIONAL_EPS)
        rows, cols = rows[still], cols[still]
    if _within_repair_band(units, territory, problem):
        return territory
    settle = (units, unit_items, territory, centres, present, problem, log)
    territory = _settle_mip(*settle, rows, cols, "integer rounding MIP")
    if _within_repair_band(units, territory, problem):
        return territory
    flex_rows, flex_cols = _flexible_pairs(unit_items, territory, centres, neighbours, present, problem)
    pairs = np.unique(np.r_[rows, flex_rows] * problem.k + np.r_[cols, flex_cols])
    return _settle_mip(*settle, pairs // problem.k, pairs % problem.k, "integer repair MIP")


def _settle_mip(
    units: _Units, unit_items: _Items, territory: np.ndarray, centres: np.ndarray, present: np.ndarray,
    problem: _Problem, log: _SolverLog, rows: np.ndarray, cols: np.ndarray, step: str,
) -> np.ndarray:
    """Territory per unit after a MIP choosing among the given pairs, every other unit staying put."""
    free = np.unique(rows)
    cost = _pair_costs(unit_items, rows, cols, centres, present, problem)
    fixed = _fixed_totals(units, territory, free, problem.k)
    x = _solve(log, step, rows, cols, cost, units.criteria, fixed, problem, integral=True)
    if x is None:
        return territory
    settled = territory.copy()
    settled[free] = _best_pair(rows, cols, x, units.size)[free]
    return settled


def _within_repair_band(units: _Units, territory: np.ndarray, problem: _Problem) -> bool:
    """Whether plain rounding already keeps every territory inside the repair band and its capacity."""
    totals = _fixed_totals(units, territory, np.array([], dtype=int), problem.k)
    active = problem.mean > 0
    deviation = np.abs(totals[:, active] / problem.mean[active] - 1)
    return bool((deviation <= problem.repair_band).all() and (totals[:, COUNT] <= problem.capacity).all())


def _flexible_pairs(
    units: _Items, territory: np.ndarray, centres: np.ndarray, neighbours: np.ndarray, present: np.ndarray,
    problem: _Problem,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs to stay and to move for the units each territory can give up most cheaply per unit of
    each criterion (so there are levers for potential, for workload and for count alike)."""
    every = np.arange(units.size)
    rows, cols = _candidates(units, territory, centres, neighbours, (every, territory))
    cost = _pair_costs(units, rows, cols, centres, present, problem)
    stay = cols == territory[rows]
    stay_cost = np.zeros(units.size)
    stay_cost[rows[stay]] = cost[stay]
    move = np.flatnonzero(~stay)
    order = move[np.lexsort((cost[move], rows[move]))]
    best = order[_first_of_runs(rows[order])]
    unit = rows[best]
    regret = cost[best] - stay_cost[unit]
    chosen = []
    for j in np.flatnonzero(problem.mean > 0):
        with np.errstate(divide="ignore"):
            price = np.where(units.criteria[unit, j] > 0, regret / units.criteria[unit, j], np.inf)
        by_territory = np.lexsort((price, territory[unit]))
        group = territory[unit][by_territory]
        rank = np.arange(len(group)) - np.searchsorted(group, group)
        chosen.append(best[by_territory[rank < FLEXIBLE_PER_TERRITORY]])
    chosen = np.unique(np.concatenate(chosen))
    return np.r_[rows[chosen], rows[chosen]], np.r_[territory[rows[chosen]], cols[chosen]]


def _first_of_runs(sorted_keys: np.ndarray) -> np.ndarray:
    """Mask of the first element of each run of equal keys in a sorted array."""
    return np.r_[True, sorted_keys[1:] != sorted_keys[:-1]] if sorted_keys.size else np.zeros(0, dtype=bool)


def _open_cells(
    items: _Items, rows: np.ndarray, cols: np.ndarray, free: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs of each free unit: the territories its cell was split between."""
    by_item = np.argsort(rows, kind="stable")
    start = np.searchsorted(rows[by_item], np.arange(items.size + 1))
    item = items.of_unit[free]
    n = start[item + 1] - start[item]
    unit_rows = np.repeat(free, n)
    offsets = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    unit_cols = cols[by_item][np.repeat(start[item], n) + offsets]
    return unit_rows, unit_cols


def _fixed_totals(units: _Units, territory: np.ndarray, free: np.ndarray, k: int) -> np.ndarray:
    """Criteria totals per territory of the units a repair step does not move."""
    fixed = np.ones(units.size, dtype=bool)
    fixed[free] = False
    return np.column_stack([
        np.bincount(territory[fixed], units.criteria[fixed, j], k) for j in range(len(CRITERIA))
    ])


# ---------------------------------------------------------------------------------------------------
# Outputs


def _build_plan(
    acc: _Accounts,
    owners: pd.DataFrame,
    territory: np.ndarray,
    capacity: np.ndarray,
    basis: str,
    log: _SolverLog,
    policy: TerritoryPolicy,
    warnings: list[str],
) -> TerritoryPlan:
    """Assemble the published tables, balance figures, compactness and the k-means baseline."""
    k = len(owners)
    rep_ids = owners["rep_id"].to_numpy()
    territory_ids = np.array([f"T{i + 1:0{len(str(k))}d}" for i in range(k)])
    totals = np.column_stack([np.bincount(territory, acc.criteria[:, j], k) for j in range(len(CRITERIA))])
    centres = _group_centres(acc.xyz, np.ones(len(territory)), territory, k)
    balance = _deviations(totals)
    compactness = _compactness(acc.xyz, centres[territory]) if acc.has_geo.any() else None
    baseline = _kmeans_baseline(acc, k, policy.random_seed) if basis == "geo" else {}
    ratio = compactness / baseline["compactness"] if baseline.get("compactness") else None
    warnings.extend(_outcome_warnings(balance, totals[:, COUNT], capacity, rep_ids, policy.tolerance, log))
    return TerritoryPlan(
        assignments=_assignment_frame(acc, owners, territory, territory_ids),
        territories=_territory_frame(acc, territory, totals, territory_ids, rep_ids, capacity, centres, basis),
        balance=balance,
        baseline=baseline,
        compactness=compactness,
        compactness_vs_kmeans=ratio,
        basis=basis,
        solver={
            "method": " + ".join(["balanced bisection", *log.steps]),
            "status": "optimal" if not log.failures else "fallback",
            "seconds": round(log.seconds, 3),
        },
        warnings=warnings,
    )


def _deviations(totals: np.ndarray) -> dict[str, float]:
    """Largest relative deviation from the mean territory, per criterion (0 when the total is 0)."""
    mean = totals.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        deviation = np.where(mean > 0, np.abs(totals - mean).max(axis=0) / mean, 0.0)
    return {name: float(deviation[j]) for j, name in enumerate(CRITERIA)}


def _compactness(xyz: np.ndarray, centre: np.ndarray) -> float:
    """Sum of great-circle km from each account with coordinates to its territory centre."""
    ok = np.isfinite(xyz[:, 0])
    return float(_km(xyz[ok], centre[ok]).sum())


def _kmeans_baseline(acc: _Accounts, k: int, seed: int) -> dict[str, float]:
    """Balance and compactness of plain k-means on the accounts with coordinates (no balancing).

    k-means is fitted on a sample of at most KMEANS_SAMPLE accounts (at 1M accounts the full fit alone
    takes most of the time budget) and then assigns every account to its nearest centre.
    """
    idx = np.flatnonzero(acc.has_geo)
    clusters = min(k, idx.size)
    rng = np.random.default_rng(seed)
    sample = idx if idx.size <= KMEANS_SAMPLE else rng.choice(idx, KMEANS_SAMPLE, replace=False)
    model = KMeans(n_clusters=clusters, n_init=1, random_state=seed).fit(acc.xyz[sample])
    label = model.predict(acc.xyz[idx])
    totals = np.column_stack([np.bincount(label, acc.criteria[idx, j], k) for j in range(len(CRITERIA))])
    centres = _unit_vectors(model.cluster_centers_)
    return {**_deviations(totals), "compactness": _compactness(acc.xyz[idx], centres[label])}


def _outcome_warnings(
    balance: dict[str, float], counts: np.ndarray, capacity: np.ndarray, rep_ids: np.ndarray,
    tolerance: float, log: _SolverLog,
) -> list[str]:
    """Warnings on what the plan could not achieve and on solver steps that fell back."""
    out = [f"solver step failed, the previous balanced assignment was kept: {f}" for f in log.failures]
    off = {name: dev for name, dev in balance.items() if dev > tolerance}
    if off:
        figures = ", ".join(f"{name} {dev:.1%}" for name, dev in off.items())
        out.append(f"balance outside the {tolerance:.0%} tolerance ({figures}): too few or too lumpy accounts per rep")
    over = np.flatnonzero(counts > capacity)
    if over.size:
        out.append(f"{over.size} reps are over capacity, e.g. {rep_ids[over[0]]} with {counts[over[0]]:.0f} accounts")
    return out


def _assignment_frame(
    acc: _Accounts, owners: pd.DataFrame, territory: np.ndarray, territory_ids: np.ndarray
) -> pd.DataFrame:
    """One row per account: territory, rep, previous owner and whether the account changes hands."""
    rep = owners["rep_id"].to_numpy()[territory]
    return pd.DataFrame({
        "account_id": acc.ids,
        "territory_id": territory_ids[territory],
        "rep_id": rep,
        "previous_rep_id": acc.previous,
        "is_moved": pd.notna(acc.previous) & (acc.previous != rep),
    })


def _territory_frame(
    acc: _Accounts, territory: np.ndarray, totals: np.ndarray, territory_ids: np.ndarray, rep_ids: np.ndarray,
    capacity: np.ndarray, centres: np.ndarray, basis: str,
) -> pd.DataFrame:
    """One row per territory with its totals, tier counts, capacity and centre."""
    k = len(territory_ids)
    tiers = np.bincount(territory * len(TIERS) + acc.tier, minlength=k * len(TIERS)).reshape(k, len(TIERS))
    lat, lon = _to_lat_lon(centres)
    return pd.DataFrame({
        "territory_id": territory_ids,
        "rep_id": rep_ids,
        "basis": basis,
        "account_count": totals[:, COUNT].astype(np.int64),
        "potential": totals[:, POTENTIAL],
        "workload": totals[:, WORKLOAD],
        "a_count": tiers[:, 0],
        "b_count": tiers[:, 1],
        "c_count": tiers[:, 2],
        "capacity_accounts": np.where(np.isfinite(capacity), capacity, np.nan),
        "center_latitude": lat,
        "center_longitude": lon,
    })
