"""Balanced sales territories: one per owner rep, by geography or vertical, solved with HiGHS.

The plan is built in five steps:
1. Accounts are grouped into units (a parent with all its children), so a family is never split.
2. A balanced recursive bisection cuts the units into one part per owner rep. Each cut sorts the units
   along the principal axis of their coordinates (geo) or along the industry order (vertical), and a small
   HiGHS LP over the units next to the cut (first over bins of them, when there are many) gives each side
   its share of potential, workload and account count at once. This start is already balanced; it is
   what a failed solve falls back to.
3. Parts are matched to reps with `linear_sum_assignment`, so current owners keep as many of their
   accounts as possible (and, for geo, reps stay near home).
4. Lloyd-style rounds of a HiGHS LP move cells of neighbouring units between their territory and a few
   candidate territories (nearest centres for geo; neighbouring runs of the industry order, which serves
   as the map, for vertical), minimising distance, industry spread and owner changes while every
   territory stays inside a band around the mean of each criterion and under its rep's capacity.
5. Integer repair: cells the LP split are opened into their units and shared out by a smaller LP; the
   few units still split are rounded, by a HiGHS MIP when plain rounding would leave the band. In a book
   where most units are large (cities by population), the largest units may instead choose their
   territory in a mixed MIP (the others still shares), whichever plan ends closer to target.

A unit too big for one territory's share even alone (above the band on potential or account count) gets
a rep's territory to itself first, and the other reps share the rest; the plan reports how close any plan
could come (`balance_lower_bound`). Small books (few unit-territory pairs) end with Lloyd rounds of a
HiGHS MIP in the policy's own band; when no plan meets every band at once, a round is a CP-SAT model
(one worker, deterministic time limit) with only potential and account count hard.

In a geo plan the accounts without coordinates are cut into balanced runs of the industry order like a
vertical plan, matched to reps on their own, and then stay put while the LP reshapes the geo part around
them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from ortools.sat.python import cp_model
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, linear_sum_assignment, linprog, milp
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from sklearn.cluster import KMeans

from ml.policy import BALANCE_CRITERIA, TerritoryPolicy

EARTH_RADIUS_KM = 6371.0088
DAYS_PER_MONTH = 30.44
CRITERIA = BALANCE_CRITERIA
POTENTIAL, WORKLOAD, A_COUNT, COUNT = range(4)
TIERS = ("A", "B", "C")
UNKNOWN_INDUSTRY = -1

# The LP holds every territory within 40% of the policy tolerance around its target and the integer
# repair within half: the published plan stays well inside the tolerance, and the repair has room
# enough to be solved to optimality quickly.
BAND_SHARE_OF_TOLERANCE = 0.4
REPAIR_BAND_SHARE_OF_TOLERANCE = 0.5
# Criteria that count accounts are whole numbers per territory: their bands are never narrower than
# one account either side (a ±5% band around 15 A-tier accounts holds no whole number but 15).
WHOLE_CRITERIA = (A_COUNT, COUNT)

# A cut's LP sees this share of the node's units on each side of the cut (at least MIN_WINDOW units).
WINDOW_SHARE = 0.1
MIN_WINDOW = 16
# Price of missing a criterion's share in a cut by the whole node, per unit in the node, against at most
# 1 per unit moved: a unit holds about 1/m of a node of m units, so the price grows with m.
CUT_SLACK_PENALTY = 100.0
# A cut's LP over a wider window is first solved over this many bins of consecutive units (1,000 bins
# left plans 3% longer at 1M accounts: whole bins balance a cut only by reaching further from it).
CUT_BINS = 4_000
# A cut missing some criterion's share by more than this is retried over the whole node.
CUT_SHORTFALL = 1e-4

# Share of accounts with a current owner from which a plan is a re-plan that starts from the owners.
REPLAN_OWNED_SHARE = 0.5

REFINE_ROUNDS = 6
# Candidate territories per cell besides its own, its owner's and its industry's: enough to reshape
# territories (5 gave plans about 5% longer at 100k accounts), few enough to keep the LP sparse.
NEAREST_CANDIDATES = 8
# The LP moves cells of neighbouring units: this many per territory, and at most ITEM_BUDGET in all,
# keep a round to a few seconds while boundaries stay fine-grained (at 1M accounts and 500 reps, 16,000
# cells made one round take over 60 s and 8,000 cells 8 s, at an LP optimum 0.2% higher).
CELLS_PER_TERRITORY = 32
ITEM_BUDGET = 8_000
# Units holding more than this share of a band's half-width are cells of their own and are pinned
# before the integer repair: a split whale cannot be rounded without a big error.
LARGE_UNIT_SHARE = 0.5
# When pinning every large unit leaves the repair band in a book where most units are large (1,000
# cities by population: every one of them), units above this many band half-widths are chosen by a
# mixed MIP instead and the rest stay shares (4 left that MIP short of its gap in 10 s on
# us_cities_top1k; 10 picks its 25 largest cities). Books of many small units keep the plain pinning
# (at 100k accounts the mixed MIP took 5 s more for a plan no better balanced).
MIXED_LARGE_SHARE = 0.5
HUGE_UNIT_SHARE = 10.0
MIXED_RELATIVE_GAP = 0.01
# Units per territory, per criterion, that the last-resort repair MIP may move besides the split ones.
FLEXIBLE_PER_TERRITORY = 16

# Cost weights, in typical account-to-centre distances per account: keeping an account with its current
# owner (high enough that a re-plan of an unchanged book hardly reshapes it), and putting an account
# without coordinates where little of its industry is.
CONTINUITY_WEIGHT = 3.0
# Moving an account with an open late-stage deal costs this many typical distances: more than any
# reshaping gains, less than leaving a balance band, so such accounts move only to restore balance.
LATE_STAGE_WEIGHT = 50.0
COHESION_WEIGHT = 1.0
# Distance charged for going to a territory that has no centre yet (no unit of the item's kind).
UNPLACED_DISTANCE = 10.0
# Weight of the rep's home distance (relative to the largest) against the share of accounts kept.
HOME_DISTANCE_WEIGHT = 0.25
# Price of a territory leaving its band by the mean of a criterion, as a multiple of moving every account
# of a mean territory to its costliest candidate: leaving a band only pays when no move avoids it.
BAND_SLACK_PENALTY = 10.0
CAPACITY_PENALTY_FACTOR = 1e3
# An account over the disruption budget costs this share of an account's worth of balance deviation.
BUDGET_SHARE_OF_BAND_PENALTY = 0.2
# The MIP puts balance far above distance: trading slack for distance makes it much harder to prove
# optimal, and balance is what is left to fix at that stage.
MIP_PENALTY_FACTOR = 1e3

# When the bands cannot all hold (a few whales among a few accounts per territory), workload and A-tier
# count, which follow from the tiers, give way before potential and account count: their slack is cheaper.
CRITERION_SLACK_WEIGHT = np.array([1.0, 0.25, 0.25, 1.0])
PRIMARY_CRITERIA = (POTENTIAL, COUNT)

# Books with at most this many unit-territory pairs are planned exactly: Lloyd rounds of an integer
# assignment (a HiGHS MIP started from the plan so far) in the policy's own band, since no rounding
# follows that would need the narrower LP band's headroom.
EXACT_MAX_PAIRS = 12_000
# Deviations are compared with the tolerance in floating point: a hair inside the band keeps a territory
# exactly at its edge (105 accounts for a target of 100) from reading as outside.
EXACT_BAND_MARGIN = 1e-6
EXACT_ROUNDS = 20
# Territories a unit may take in an exact round: its few cheapest and its current one. At 400 accounts
# and 8 reps, four of eight kept every seed within 1% of the exact MILP at 3-37 s a plan; all eight
# took minutes a round on some seeds.
EXACT_CANDIDATES = 4
# A round stops at this gap, so it is deterministic; the time limit is only a guard against a runaway
# solve on a busy machine (rounds took 3-10 s at 400 accounts and 8 reps). A gap and a least gain of
# 0.5% left some seeds 1.2% above the exact MILP.
EXACT_RELATIVE_GAP = 0.001
EXACT_ROUND_TIME_LIMIT_S = 60.0
EXACT_MIN_GAIN = 0.001
# The CP-SAT round (bands that cannot all hold at once): its deterministic time limit (in CP-SAT's
# own units, about a second each here), and the integer scales of its loads, costs and budget rows.
CPSAT_DETERMINISTIC_LIMIT = 5.0
CPSAT_LOAD_SCALE = 1e7
CPSAT_COST_SCALE = 1e3
CPSAT_BUDGET_SCALE = 1e3

LP_TIME_LIMIT_S = 60.0
MIP_TIME_LIMIT_S = 10.0
# The repair MIP only touches boundary units, so 5% of their cost is a rounding error on the plan.
MIP_RELATIVE_GAP = 0.05
FRACTIONAL_EPS = 1e-6
# k-means for the baseline is fitted on at most this many accounts, then assigns all of them: at 1M
# accounts a full fit alone takes 45-55 s here.
KMEANS_SAMPLE = 200_000


@dataclass
class TerritoryPlan:
    """A territory plan: assignments, territory totals, balance and how the solver fared."""

    assignments: pd.DataFrame
    territories: pd.DataFrame
    balance: dict[str, float]
    # Share of the accounts (and of the potential) whose owner changes.
    moved_share: float
    moved_potential_share: float
    baseline: dict[str, float]
    compactness: float | None
    compactness_vs_kmeans: float | None
    basis: str
    solver: dict[str, object]
    warnings: list[str] = field(default_factory=list)
    # Least largest deviation per criterion that any plan could reach: its largest unit (a parent with
    # its children) cannot be split, and whole-number criteria move in whole accounts.
    balance_lower_bound: dict[str, float] = field(default_factory=dict)
    # Territory ids whose rep holds one unit too big for a territory's share, with nothing else.
    dedicated_territories: list[str] = field(default_factory=list)
    # Largest deviation per criterion over the shared territories only (every territory but the
    # dedicated ones), against targets shared out among them: how evenly the other reps share the rest.
    # The same as `balance` when no territory is dedicated.
    balance_shared: dict[str, float] = field(default_factory=dict)


@dataclass
class _Accounts:
    """Per-account arrays aligned with the input rows."""

    ids: np.ndarray
    xyz: np.ndarray
    has_geo: np.ndarray
    industry: np.ndarray
    criteria: np.ndarray
    tier: np.ndarray
    owner: np.ndarray
    previous: np.ndarray
    parent: np.ndarray
    # Rep index an account is pinned to (-1 when free), and whether it has an open late-stage deal.
    lock: np.ndarray
    late: np.ndarray


@dataclass
class _Units:
    """Units (a parent with all its children, or a lone account) the planner never splits."""

    of_account: np.ndarray
    criteria: np.ndarray
    xyz: np.ndarray
    geo: np.ndarray
    industry: np.ndarray
    owner: np.ndarray
    sequence: np.ndarray
    lock: np.ndarray
    late: np.ndarray

    @property
    def size(self) -> int:
        return len(self.criteria)


def _subset(units: _Units, mask: np.ndarray) -> _Units:
    """The units selected by mask (without the account mapping, which only the whole set needs)."""
    return _Units(
        of_account=np.zeros(0, dtype=np.int64),
        criteria=units.criteria[mask],
        xyz=units.xyz[mask],
        geo=units.geo[mask],
        industry=units.industry[mask],
        owner=units.owner[mask],
        sequence=units.sequence[mask],
        lock=units.lock[mask],
        late=units.late[mask],
    )


@dataclass
class _Items:
    """What an LP moves: units, or cells of units from one territory (and one owner and industry)."""

    of_unit: np.ndarray
    criteria: np.ndarray
    xyz: np.ndarray
    geo: np.ndarray
    industry: np.ndarray
    owner: np.ndarray
    large: np.ndarray
    sequence: np.ndarray
    # Accounts with an open late-stage opportunity in the item.
    late: np.ndarray

    @property
    def size(self) -> int:
        return len(self.criteria)


@dataclass
class _Problem:
    """What every solve shares: bands, capacities, cost scales and where candidates come from."""

    k: int
    # Target per territory and criterion: the total shared out by the reps' ramp shares.
    target: np.ndarray
    # Totals per territory of the units no solve moves.
    base_load: np.ndarray
    band: np.ndarray
    repair_band: np.ndarray
    # The policy's own band (whole-number criteria at least one account wide), for the exact solve.
    exact_band: np.ndarray
    capacity: np.ndarray
    typical_km: float
    # Territories before and after each territory in the industry order, -1 at the ends.
    neighbours: np.ndarray
    # Share of each industry's units (without coordinates) in each territory; column 0 is unknown.
    industry_share: np.ndarray
    industry_home: np.ndarray
    # Units without coordinates per territory on average: the yardstick of distance in the industry order.
    run_length: float
    # Centre of each territory's geo units, and mean position in the industry order of its other units
    # (NaN when it has none); both move from round to round.
    centres: np.ndarray
    sequence_centres: np.ndarray
    # Accounts and potential the movable units may still move away from their current owner.
    budget: np.ndarray


@dataclass
class _SolverLog:
    """Solver steps (with how often each ran), failures and time spent solving."""

    steps: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


def plan_territories(
    accounts: pd.DataFrame,
    reps: pd.DataFrame,
    policy: TerritoryPolicy,
    workload_weights: dict[str, float],
    kmeans_baseline: bool = True,
) -> TerritoryPlan:
    """Assign every account to exactly one owner rep's territory, balanced and compact; with
    `kmeans_baseline`, plain k-means on the same accounts is measured for comparison."""
    warnings: list[str] = []
    owners = _owner_reps(reps, policy, warnings)
    acc = _account_arrays(accounts, owners, workload_weights, policy, warnings)
    _granularity_warning(len(acc.ids), len(owners), policy, warnings)
    ramp = _ramp_shares(owners, policy)
    capacity = _capacities(owners, policy, len(acc.ids), ramp, warnings)
    basis = _choose_basis(policy, acc, warnings)
    units = _units(acc, basis)
    log = _SolverLog()
    tolerance = np.array([policy.tolerance_of(c) for c in CRITERIA])
    bound = _deviation_lower_bound(units.criteria, ramp)
    dedicated_unit, dedicated_rep = _dedicated(units, owners, ramp, tolerance)
    territory = np.full(units.size, -1)
    territory[dedicated_unit] = dedicated_rep
    # Units locked to a dedicated rep stay with that rep: a lock wins over balance.
    pinned = np.isin(units.lock, dedicated_rep) & (territory < 0)
    territory[pinned] = units.lock[pinned]
    rest = territory < 0
    shared = np.setdiff1d(np.arange(len(owners)), dedicated_rep)
    territory[rest] = shared[
        _assign_units(
            _reindexed(units, rest, shared, len(owners)),
            owners.iloc[shared].reset_index(drop=True),
            capacity[shared],
            ramp[shared],
            tolerance,
            policy,
            log,
        )
    ]
    warnings.extend(_bound_warnings(bound, tolerance, units, dedicated_unit, dedicated_rep, acc, owners))
    return _build_plan(
        acc,
        owners,
        territory[units.of_account],
        capacity,
        ramp,
        basis,
        log,
        policy,
        warnings,
        kmeans_baseline,
        bound,
        dedicated_rep,
    )


def _assign_units(
    units: _Units,
    owners: pd.DataFrame,
    capacity: np.ndarray,
    ramp: np.ndarray,
    tolerance: np.ndarray,
    policy: TerritoryPolicy,
    log: _SolverLog,
) -> np.ndarray:
    """Territory (owner rep index) per unit: the balanced start, then the refinement."""
    if units.size == 0:
        return np.zeros(0, dtype=np.int64)
    territory, neighbours = _start(units, owners, float(tolerance.min()), log)
    locked = units.lock >= 0
    territory[locked] = units.lock[locked]
    # In a geo plan the units without coordinates keep their (balanced) runs of the industry order:
    # letting them move too ties far-apart territories together and made the LP 4-10x slower.
    movable = (units.geo if units.geo.any() else np.ones(units.size, dtype=bool)) & ~locked
    if len(owners) > 1 and movable.any():
        budget = np.array([policy.max_moved_account_share, policy.max_moved_potential_share])
        problem = _problem(units, territory, neighbours, capacity, tolerance, ramp, budget, ~movable)
        territory[movable] = _refine(_subset(units, movable), territory[movable], problem, log)
    return territory


def _deviation_lower_bound(criteria: np.ndarray, ramp: np.ndarray) -> dict[str, float]:
    """Per criterion, a deviation from target no plan can avoid.

    A territory holding the largest unit is at least that unit; with equal shares, the m units above
    the target need m territories of their own, so the other territories share what is left and one of
    them is at most its mean; and a whole-number criterion whose target is not whole is off by the
    rounding somewhere.
    """
    k = len(ramp)
    share = ramp / ramp.sum()
    totals = criteria.sum(axis=0)
    bound = {}
    for j, name in enumerate(CRITERIA):
        if totals[j] <= 0 or k < 2:
            bound[name] = 0.0
            continue
        target = totals[j] * share
        values = np.sort(criteria[:, j])[::-1]
        best = max(0.0, values[0] / target.max() - 1)
        if np.allclose(share, share[0]):
            t = target[0]
            above = int(min((values > t).sum(), k - 1))
            for m in range(1, above + 1):
                best = max(best, 1 - (totals[j] - values[:m].sum()) / ((k - m) * t))
            if j in WHOLE_CRITERIA:
                best = max(best, max(np.ceil(t - 1e-9) - t, t - np.floor(t + 1e-9)) / t)
        bound[name] = float(best)
    return bound


def _dedicated(
    units: _Units, owners: pd.DataFrame, ramp: np.ndarray, tolerance: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Units too big for a territory's share (above the band on a primary criterion even alone), each
    with the rep whose territory it gets to itself: its lock, else its owner, else the rep living
    nearest, else the first rep left. Largest first, while at least two reps are left to share the
    rest, whose shares are worked out again after each one. Not in books so small that one account is
    more than the count band: there every territory is lumpy, and a territory of one account is no
    better a compromise than the LP's."""
    k = len(owners)
    if units.criteria[:, COUNT].sum() / k * tolerance[COUNT] < 1:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    free = np.ones(k, dtype=bool)
    left = np.ones(units.size, dtype=bool)
    home = _rep_homes(owners)
    chosen_units, chosen_reps = [], []
    primary = list(PRIMARY_CRITERIA)
    while free.sum() > 2 and left.any():
        share = ramp[free] / ramp[free].sum()
        target = units.criteria[left][:, primary].sum(axis=0) * share.max()
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.nan_to_num(units.criteria[:, primary] / target / (1 + tolerance[primary]))
        ratio[~left] = 0
        unit = int(np.argmax(ratio.max(axis=1)))
        if ratio[unit].max() <= 1:
            break
        candidates = [units.lock[unit], units.owner[unit]]
        rep = next((int(r) for r in candidates if r >= 0 and free[r]), -1)
        if rep < 0 and units.geo[unit] and np.isfinite(home[free, 0]).any():
            distance = np.linalg.norm(home - units.xyz[unit], axis=1)
            rep = int(np.nanargmin(np.where(free, distance, np.nan)))
        if rep < 0:
            rep = int(np.flatnonzero(free)[0])
        chosen_units.append(unit)
        chosen_reps.append(rep)
        free[rep] = False
        left[unit] = False
    return np.array(chosen_units, dtype=np.int64), np.array(chosen_reps, dtype=np.int64)


def _rep_homes(owners: pd.DataFrame) -> np.ndarray:
    """Home of each owner rep as a unit vector (NaN rows without one)."""
    lat, lon = (
        pd.to_numeric(_column(owners, c), errors="coerce").to_numpy(dtype=float)
        for c in ("latitude", "longitude")
    )
    return _to_xyz(lat, lon, np.isfinite(lat) & np.isfinite(lon))


def _reindexed(units: _Units, mask: np.ndarray, reps: np.ndarray, k: int) -> _Units:
    """The units selected by mask, their owners and locks renumbered among the given reps (-1 for
    reps outside them)."""
    # One spare slot at the end, so that -1 (no owner, no lock) maps to -1.
    position = np.full(k + 1, -1)
    position[reps] = np.arange(len(reps))
    subset = _subset(units, mask)
    subset.owner = position[subset.owner]
    subset.lock = position[subset.lock]
    return subset


def _bound_warnings(
    bound: dict[str, float],
    tolerance: np.ndarray,
    units: _Units,
    dedicated_unit: np.ndarray,
    dedicated_rep: np.ndarray,
    acc: _Accounts,
    owners: pd.DataFrame,
) -> list[str]:
    """Criteria no plan can keep within the tolerance, and the reps given a unit of their own."""
    out = []
    beyond = {name: b for j, (name, b) in enumerate(bound.items()) if b > tolerance[j]}
    if beyond:
        figures = ", ".join(f"{name} {b:.1%}" for name, b in beyond.items())
        out.append(
            f"no plan can keep every territory within the tolerance: the least possible largest deviation is "
            f"{figures} (the largest account or family cannot be split)"
        )
    # A unit is named by its member with the most potential.
    order = np.lexsort((-acc.criteria[:, POTENTIAL], units.of_account))
    first = order[_first_of_runs(units.of_account[order])]
    root = np.full(units.size, -1)
    root[units.of_account[first]] = first
    for unit, rep in zip(dedicated_unit, dedicated_rep, strict=True):
        out.append(
            f"account {acc.ids[root[unit]]!r} is too big for one territory's share, so rep "
            f"{owners['rep_id'].iloc[rep]} has it to themselves and the other reps share the rest"
        )
    if dedicated_rep.size:
        shared = len(owners) - dedicated_rep.size
        out.append(
            f"{dedicated_rep.size} territor{'y is' if dedicated_rep.size == 1 else 'ies are'} a single named "
            f"account: account count, workload and A-tier count are balanced over the other {shared} "
            f"territories only (their targets are shared out among those), while potential is reported over "
            f"every territory, the named account's included; balance_shared gives each criterion over the "
            f"{shared} shared territories"
        )
    return out


def account_geometry(
    accounts: pd.DataFrame, workload_weights: dict[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors (NaN rows without coordinates) and the criteria matrix (columns in CRITERIA order)
    of an accounts frame, exactly as the planner sees them: what baselines are measured on."""
    owners = pd.DataFrame({"rep_id": []})
    acc = _account_arrays(accounts, owners, workload_weights, TerritoryPolicy(), [])
    return acc.xyz, acc.criteria


def assignment_balance(
    accounts: pd.DataFrame, reps: pd.DataFrame, policy: TerritoryPolicy, workload_weights: dict[str, float]
) -> dict[str, float]:
    """Largest deviation per criterion of the assignment in `accounts.owner_rep_id`, measured exactly as a
    plan's balance is (ramp-shared targets among the owner reps); accounts whose rep owns no territory are
    left out, so a rebalance sees the book as it stands."""
    owners = _owner_reps(reps, policy, [])
    acc = _account_arrays(accounts, owners, workload_weights, policy, [])
    placed = acc.owner >= 0
    return _deviations(_totals(acc.criteria[placed], acc.owner[placed], len(owners)), _ramp_shares(owners, policy))


def measure_assignment(
    xyz: np.ndarray, criteria: np.ndarray, territory: np.ndarray, k: int
) -> dict[str, float]:
    """Largest deviation from the mean per criterion, and compactness (km from every account with
    coordinates to its territory's centre): the yardstick every method is measured with."""
    centres = group_centres(xyz, np.ones(len(territory)), territory, k)
    return {
        **_deviations(_totals(criteria, territory, k)),
        "compactness": _compactness(xyz, centres[territory]),
    }


# ---------------------------------------------------------------------------------------------------
# Inputs


def owner_rep_ids(reps: pd.DataFrame, policy: TerritoryPolicy) -> list[str]:
    """The reps who own a territory under the policy (its owner roles, or every rep when none has one)."""
    return _owner_reps(reps, policy, [])["rep_id"].astype(str).tolist()


def _owner_reps(reps: pd.DataFrame, policy: TerritoryPolicy, warnings: list[str]) -> pd.DataFrame:
    """Reps who own a territory, sorted by rep_id: those with an owner role, or every rep if none has."""
    if reps.empty:
        raise ValueError("the reps table has no rows: territories need at least one rep to own them")
    owners = reps[_column(reps, "role").isin(policy.owner_roles)]
    if owners.empty:
        warnings.append(
            f"no rep has a role in {policy.owner_roles}; each of the {len(reps)} reps owns a territory"
        )
        owners = reps
    owners = owners.assign(rep_id=owners["rep_id"].astype(str)).sort_values("rep_id", kind="stable")
    repeated = owners["rep_id"][owners["rep_id"].duplicated()]
    if not repeated.empty:
        raise ValueError(f"the reps table repeats rep_id {repeated.iloc[0]!r}; each rep must appear once")
    return owners.reset_index(drop=True)


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column, or all-null when the frame lacks that optional column."""
    return frame[name] if name in frame else pd.Series(pd.NA, index=frame.index, dtype="object")


def _account_arrays(
    accounts: pd.DataFrame,
    owners: pd.DataFrame,
    workload_weights: dict[str, float],
    policy: TerritoryPolicy,
    warnings: list[str],
) -> _Accounts:
    """Validate the accounts frame and turn it into aligned NumPy arrays."""
    ids = accounts["account_id"].astype(str).to_numpy()
    if pd.Index(ids).has_duplicates:
        raise ValueError("accounts repeat an account_id; each account must appear once")
    lat, lon = (
        pd.to_numeric(_column(accounts, c), errors="coerce").to_numpy(dtype=float)
        for c in ("latitude", "longitude")
    )
    has_geo = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
    potential = pd.to_numeric(accounts["potential"], errors="coerce").to_numpy(dtype=float)
    if (potential < 0).any():
        raise ValueError(
            f"{int((potential < 0).sum())} accounts have a negative potential; potential must be >= 0"
        )
    if np.isnan(potential).any():
        warnings.append(f"{int(np.isnan(potential).sum())} accounts have no potential; they count as 0")
    tiers = accounts["tier"].astype("string")
    unknown = sorted(set(tiers.dropna().unique()) - set(workload_weights)) + (
        ["null"] if tiers.isna().any() else []
    )
    if unknown:
        raise ValueError(
            f"tier(s) {unknown} have no workload weight; add them to workload_weights in the policy"
        )
    workload = tiers.map(workload_weights).to_numpy(dtype=float)
    is_a = (tiers == "A").fillna(False).to_numpy(dtype=float)
    previous = _column(accounts, "owner_rep_id").astype("string")
    late = (
        _column(accounts, "has_late_stage_opportunity").astype("boolean").fillna(False).to_numpy(dtype=bool)
    )
    return _Accounts(
        ids=ids,
        xyz=_to_xyz(lat, lon, has_geo),
        has_geo=has_geo,
        industry=pd.factorize(_column(accounts, "industry").astype("string"), sort=True)[0],
        criteria=np.column_stack([np.nan_to_num(potential), workload, is_a, np.ones(len(ids))]),
        tier=pd.Categorical(tiers, categories=TIERS).codes,
        owner=pd.Index(owners["rep_id"]).get_indexer(previous.fillna("")),
        previous=previous.astype(object).where(previous.notna(), None).to_numpy(),
        parent=pd.Index(ids).get_indexer(_column(accounts, "parent_account_id").astype("string").fillna("")),
        lock=_locks(ids, _column(accounts, "locked_rep_id"), owners, policy, warnings),
        late=late,
    )


def _locks(
    ids: np.ndarray, column: pd.Series, owners: pd.DataFrame, policy: TerritoryPolicy, warnings: list[str]
) -> np.ndarray:
    """Owner rep index each account is pinned to (-1 when free): the policy's named accounts, then the
    accounts' `locked_rep_id` column. A lock to a rep who owns no territory is dropped with a warning."""
    wanted = column.astype("string").to_numpy(dtype=object, na_value=None)
    named = pd.Index(ids).get_indexer(list(policy.locks))
    for position, rep_id in zip(named, policy.locks.values(), strict=True):
        if position >= 0:
            wanted[position] = rep_id
    unknown_ids = [a for a, p in zip(policy.locks, named, strict=True) if p < 0]
    if unknown_ids:
        warnings.append(f"{len(unknown_ids)} locked accounts are not in the book, e.g. {unknown_ids[0]!r}")
    lock = pd.Index(owners["rep_id"]).get_indexer(pd.Series(wanted).fillna(""))
    dropped = pd.notna(wanted) & (lock < 0)
    if dropped.any():
        first = int(np.flatnonzero(dropped)[0])
        warnings.append(
            f"{int(dropped.sum())} account locks name a rep who owns no territory and were dropped, "
            f"e.g. {ids[first]!r} to {wanted[first]!r}"
        )
    return lock


def _ramp_shares(owners: pd.DataFrame, policy: TerritoryPolicy) -> np.ndarray:
    """Share of a full book each owner rep carries: the policy's ramp curve by whole months since the
    rep's start_date (1 when the rep has no start date, or has ramped up)."""
    start = pd.to_datetime(_column(owners, "start_date"), errors="coerce")
    if not policy.ramp_curve or start.isna().all():
        return np.ones(len(owners))
    today = pd.Timestamp(policy.plan_date or pd.Timestamp.today().date())
    months = ((today - start).dt.days // DAYS_PER_MONTH).clip(lower=0)
    curve = np.r_[policy.ramp_curve, 1.0]
    step = np.minimum(months.fillna(len(curve) - 1).to_numpy(dtype=int), len(curve) - 1)
    return curve[step]


def _capacities(
    owners: pd.DataFrame, policy: TerritoryPolicy, n_accounts: int, ramp: np.ndarray, warnings: list[str]
) -> np.ndarray:
    """Account capacity per owner rep (inf when unbounded) times its ramp share, scaled up when the
    total is below the book."""
    capacity = pd.to_numeric(_column(owners, "capacity_accounts"), errors="coerce").to_numpy(dtype=float)
    default = np.inf if policy.default_capacity_accounts is None else float(policy.default_capacity_accounts)
    capacity = np.floor(np.where(np.isnan(capacity), default, capacity) * ramp)
    total = capacity.sum()
    if total < n_accounts:
        scale = n_accounts / max(total, 1.0)
        capacity = np.ceil(np.maximum(capacity, 1.0) * scale)
        warnings.append(
            f"rep capacities add up to {total:.0f} accounts but there are {n_accounts}; "
            f"capacities were scaled up by {scale:.2f}"
        )
    return capacity


def _granularity_warning(n_accounts: int, n_owners: int, policy: TerritoryPolicy, warnings: list[str]) -> None:
    """Say so when a single account is a bigger step than the count tolerance of a territory."""
    per_rep = n_accounts / max(n_owners, 1)
    tolerance = policy.tolerance_of("account_count")
    if n_owners > 1 and per_rep * tolerance < 1:
        warnings.append(
            f"{n_accounts:,} accounts over {n_owners} owner reps is {per_rep:.1f} per rep: one account is "
            f"{1 / per_rep:.0%} of a territory's mean count, more than the ±{tolerance:.0%} band, so balance "
            f"may be out of reach; fewer owner reps, or a wider tolerance, would fit this book"
        )


def _choose_basis(policy: TerritoryPolicy, acc: _Accounts, warnings: list[str]) -> str:
    """Geo or vertical, as the policy says; 'auto' is geo when enough accounts have coordinates."""
    geo_share = float(acc.has_geo.mean()) if len(acc.has_geo) else 0.0
    shapeless = (
        "no account has an industry either, so the territories are balanced but have no shape; add "
        "coordinates or an industry to the accounts to group them"
    )
    if policy.basis == "vertical" or (policy.basis == "auto" and geo_share < policy.min_geo_share):
        if len(acc.industry) and (acc.industry < 0).all():
            warnings.append(f"vertical territories group accounts by industry, but {shapeless}")
        return "vertical"
    if geo_share == 0:
        warnings.append("no account has coordinates, so territories are vertical although the basis is geo"
                        + (f"; {shapeless}" if len(acc.industry) and (acc.industry < 0).all() else ""))
        return "vertical"
    if geo_share < 1:
        warnings.append(
            f"{int((~acc.has_geo).sum())} accounts have no coordinates; they are shared out by industry"
        )
    return "geo"


# ---------------------------------------------------------------------------------------------------
# Geometry on the unit sphere (distances stay right anywhere on Earth)


def _to_xyz(lat: np.ndarray, lon: np.ndarray, has_geo: np.ndarray) -> np.ndarray:
    """Unit vectors for coordinates in degrees; NaN rows where coordinates are missing."""
    phi, lam = np.radians(np.where(has_geo, lat, 0.0)), np.radians(np.where(has_geo, lon, 0.0))
    xyz = np.column_stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)])
    xyz[~has_geo] = np.nan
    return xyz


def _to_lat_lon(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude in degrees of vectors."""
    lat = np.degrees(np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1])))
    return lat, np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0]))


def great_circle_km(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Great-circle (haversine) distance in km between rows of unit vectors, via the chord length."""
    chord = np.linalg.norm(a - b, axis=1)
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.clip(chord / 2, 0, 1))


def _unit_vectors(sums: np.ndarray) -> np.ndarray:
    """Summed vectors projected onto the sphere; zero sums become NaN."""
    norm = np.linalg.norm(sums, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, sums / norm, np.nan)


def group_centres(xyz: np.ndarray, weight: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Weighted centre on the sphere of each group (NaN for a group without coordinates)."""
    ok = np.isfinite(xyz[:, 0])
    sums = np.column_stack([np.bincount(group[ok], weight[ok] * xyz[ok, d], n_groups) for d in range(3)])
    return _unit_vectors(sums)


# ---------------------------------------------------------------------------------------------------
# Units


def _units(acc: _Accounts, basis: str) -> _Units:
    """Group each parent with its children (at any depth) into one unit with summed criteria."""
    n = len(acc.ids)
    linked = np.flatnonzero(acc.parent >= 0)
    label = np.arange(n)
    if linked.size:
        graph = sparse.coo_matrix((np.ones(linked.size), (linked, acc.parent[linked])), shape=(n, n))
        label = connected_components(graph, directed=False)[1]
    n_units = int(label.max(initial=-1)) + 1
    xyz = group_centres(acc.xyz, np.ones(n), label, n_units)
    # The root (the member without a parent; the biggest one if a cycle hides it) gives the unit its
    # industry and its place in the industry order.
    first = np.lexsort((-acc.criteria[:, POTENTIAL], acc.parent >= 0, label))
    root = first[_first_of_runs(label[first])]
    return _Units(
        of_account=label,
        criteria=np.column_stack(
            [np.bincount(label, acc.criteria[:, j], n_units) for j in range(len(CRITERIA))]
        ),
        xyz=xyz,
        geo=np.isfinite(xyz[:, 0]) & (basis == "geo"),
        industry=acc.industry[root],
        owner=_majority(label, acc.owner, n_units),
        sequence=_sequence(acc.industry[root], acc.ids[root]),
        # One locked member pins its whole family (to the most named rep when locks disagree).
        lock=_majority(label, acc.lock, n_units),
        late=np.bincount(label, acc.late, n_units),
    )


def _first_of_runs(keys: np.ndarray) -> np.ndarray:
    """Mask of the first element of each run of equal keys in a sorted array."""
    return np.r_[True, keys[1:] != keys[:-1]] if keys.size else np.zeros(0, dtype=bool)


def _group_ids(*columns: np.ndarray) -> np.ndarray:
    """Dense id (0..n-1) of each row's combination of values in the integer columns."""
    ids = np.zeros(len(columns[0]), dtype=np.int64)
    for column in columns:
        values, column_ids = np.unique(column, return_inverse=True)
        ids = np.unique(ids * len(values) + column_ids.ravel(), return_inverse=True)[1].ravel()
    return ids


def _majority(group: np.ndarray, value: np.ndarray, n_groups: int) -> np.ndarray:
    """Most frequent non-negative value per group (-1 when a group has none)."""
    out = np.full(n_groups, -1)
    ok = value >= 0
    if not ok.any():
        return out
    width = int(value.max()) + 1
    pairs, counts = np.unique(group[ok].astype(np.int64) * width + value[ok], return_counts=True)
    best = pairs[np.lexsort((-counts, pairs // width))]
    best = best[_first_of_runs(best // width)]
    out[best // width] = best % width
    return out


def _sequence(industry: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Position of each unit in the vertical order: by industry (unknown last), then by account id."""
    group = np.where(industry == UNKNOWN_INDUSTRY, industry.max(initial=0) + 1, industry)
    order = np.lexsort((key, group))
    position = np.empty(len(order))
    position[order] = np.arange(len(order))
    return position


# ---------------------------------------------------------------------------------------------------
# Start: balanced recursive bisection, parts matched to reps


def _start(
    units: _Units, owners: pd.DataFrame, tolerance: float, log: _SolverLog
) -> tuple[np.ndarray, np.ndarray]:
    """Balanced start: territory per unit, and each territory's neighbours in the industry order.

    Geo units are cut by geography; units without coordinates (all of them in a vertical plan) are cut
    into runs of the industry order. Each set is balanced on its own, so any pairing of a geo part with
    a run is balanced too; each set is matched to the reps separately.
    """
    k = len(owners)
    territory = np.full(units.size, -1)
    neighbours = np.full((k, 2), -1)
    if units.geo.any():
        idx = np.flatnonzero(units.geo)
        parts = _bisect(idx, k, units, True, tolerance, log)
        territory[idx] = _match(parts, idx, units, k, owners)[parts]
    if not units.geo.all():
        idx = np.flatnonzero(~units.geo)
        parts = _bisect(idx, k, units, False, tolerance, log)
        rep_of_part = _match(parts, idx, units, k, None)
        territory[idx] = rep_of_part[parts]
        neighbours[rep_of_part[1:], 0] = rep_of_part[:-1]
        neighbours[rep_of_part[:-1], 1] = rep_of_part[1:]
    # A re-plan starts from the current owners: the LP then moves only what balance needs, which a
    # fresh bisection (however well matched) cannot promise.
    owned = units.owner >= 0
    if units.criteria[owned, COUNT].sum() >= REPLAN_OWNED_SHARE * units.criteria[:, COUNT].sum():
        territory[owned] = units.owner[owned]
    return territory, neighbours


def _bisect(
    idx: np.ndarray, k: int, units: _Units, geometric: bool, tolerance: float, log: _SolverLog
) -> np.ndarray:
    """Part (0..k-1) of each unit in idx: halve the set recursively, each half holding its reps' share."""
    part = np.zeros(len(idx), dtype=int)
    stack = [(np.arange(len(idx)), k, 0)]
    while stack:
        pos, parts, offset = stack.pop()
        if parts == 1 or len(pos) == 0:
            part[pos] = offset
            continue
        left_parts = parts // 2
        order, left = _cut(idx[pos], left_parts / parts, units, geometric, tolerance, log)
        stack.append((pos[order][left], left_parts, offset))
        stack.append((pos[order][~left], parts - left_parts, offset + left_parts))
    return part


def _cut(
    ids: np.ndarray, share: float, units: _Units, geometric: bool, tolerance: float, log: _SolverLog
) -> tuple[np.ndarray, np.ndarray]:
    """Sort units along the cut direction and choose the ones going left (a mask in sorted order)."""
    if geometric:
        projection = _principal_projection(units.xyz[ids], units.criteria[ids, COUNT])
    else:
        projection = units.sequence[ids]
    order = np.argsort(projection, kind="stable")
    shares = _shares(units.criteria[ids[order]])
    cumulative = np.cumsum(shares.mean(axis=1))
    if not geometric:
        boundary = _industry_boundary(units.industry[ids[order]], cumulative, share, tolerance)
        if boundary is not None:
            return order, np.arange(len(ids)) < boundary
    return order, _balance_cut(shares, int(np.searchsorted(cumulative, share)), share, log)


def _principal_projection(xyz: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Coordinates along the direction in which the points spread most."""
    centred = xyz - np.average(xyz, axis=0, weights=weight)
    axis = np.linalg.eigh((centred * weight[:, None]).T @ centred)[1][:, -1]
    return centred @ axis


def _shares(criteria: np.ndarray) -> np.ndarray:
    """Each criterion as a share of its total, leaving out criteria that are zero everywhere."""
    totals = criteria.sum(axis=0)
    active = totals > 0
    return criteria[:, active] / totals[active]


def _industry_boundary(
    industry: np.ndarray, cumulative: np.ndarray, share: float, tolerance: float
) -> int | None:
    """Cut position at an industry change close enough to the balanced cut, if there is one."""
    boundaries = np.flatnonzero(industry[1:] != industry[:-1]) + 1
    if boundaries.size == 0:
        return None
    deviation = np.abs(cumulative[boundaries - 1] - share)
    best = int(np.argmin(deviation))
    # Snap only when each side stays within half the LP band of its share.
    allowed = tolerance * BAND_SHARE_OF_TOLERANCE / 2 * min(share, 1 - share)
    return int(boundaries[best]) if deviation[best] <= allowed else None


def _balance_cut(shares: np.ndarray, cut: int, share: float, log: _SolverLog) -> np.ndarray:
    """Left mask for a cut: units before a window go left, and an LP over the window picks the rest so
    the left side holds `share` of every criterion while staying as close to the cut as it can."""
    m = len(shares)
    half = max(MIN_WINDOW, int(WINDOW_SHARE * m))
    left, short = _window_cut(shares, cut, share, half, log)
    # A window too narrow to balance (a whale sits outside it, say) is widened to the whole node once.
    if short and half < m:
        left, _ = _window_cut(shares, cut, share, m, log)
    return left


def _window_cut(
    shares: np.ndarray, cut: int, share: float, half: int, log: _SolverLog
) -> tuple[np.ndarray, bool]:
    """Left mask from the LP over `half` units on each side of the cut, and whether it fell short.

    A wide window is solved in two steps: an LP over bins of consecutive units leaves at most one bin
    per criterion split, and a second LP shares out just the units of those bins (at 1M accounts this
    cut the bisection from about 45 s to 15 s).
    """
    m = len(shares)
    lo, hi = max(0, cut - half), min(m, cut + half)
    cost = (np.arange(lo, hi) - cut + 0.5) / half
    need = share - shares[:lo].sum(axis=0)
    left = np.arange(m) < lo
    window = shares[lo:hi]
    if hi - lo > CUT_BINS:
        bin_of = np.arange(hi - lo) * CUT_BINS // (hi - lo)
        binned = _share_lp(log, np.bincount(bin_of, cost), _totals(window, bin_of, CUT_BINS), need, m)
        if binned is None:
            return np.arange(m) < cut, True
        whole = binned > 1 - FRACTIONAL_EPS
        open_bins = (binned > FRACTIONAL_EPS) & ~whole
        left[lo:hi] = whole[bin_of]
        need = need - window[whole[bin_of]].sum(axis=0)
        opened = np.flatnonzero(open_bins[bin_of])
        cost, window = cost[opened], window[opened]
    else:
        opened = np.arange(hi - lo)
    x = _share_lp(log, cost, window, need, m)
    if x is None:
        return np.arange(m) < cut, True
    left[lo + opened] = x[: len(opened)] > 0.5
    return left, bool(x[len(opened) :].sum() > CUT_SHORTFALL)


def _share_lp(
    log: _SolverLog, cost: np.ndarray, shares: np.ndarray, need: np.ndarray, m: int
) -> np.ndarray | None:
    """Shares (0..1) of each row going left, least cost, the left side taking `need` of every criterion
    (elastic, at CUT_SLACK_PENALTY per share per unit in the node of m), then the slacks; None on failure."""
    width, n_criteria = shares.shape
    eye = np.eye(n_criteria)
    return _run_lp(
        log,
        "bisection cut LP",
        np.r_[cost, np.full(2 * n_criteria, CUT_SLACK_PENALTY * m)],
        A_eq=np.hstack([shares.T, eye, -eye]),
        b_eq=need,
        bounds=[(0, 1)] * width + [(0, None)] * (2 * n_criteria),
    )


def _match(
    parts: np.ndarray, idx: np.ndarray, units: _Units, k: int, owners: pd.DataFrame | None
) -> np.ndarray:
    """Rep index for each part: most accounts kept by their current owner, then (geo) reps near home."""
    counts = units.criteria[idx, COUNT]
    owner = units.owner[idx]
    owned = owner >= 0
    overlap = np.bincount(parts[owned] * k + owner[owned], counts[owned], k * k).reshape(k, k)
    cost = -overlap / np.maximum(np.bincount(parts, counts, k), 1.0)[:, None]
    if owners is not None:
        cost = cost + HOME_DISTANCE_WEIGHT * _home_distance(parts, idx, units, owners)
    return linear_sum_assignment(cost)[1]


def _home_distance(parts: np.ndarray, idx: np.ndarray, units: _Units, owners: pd.DataFrame) -> np.ndarray:
    """Part-by-rep distance from the part centre to the rep's home, scaled to 0..1 (0 without a home)."""
    home = _rep_homes(owners)
    centres = group_centres(units.xyz[idx], units.criteria[idx, COUNT], parts, len(owners))
    distance = np.nan_to_num(np.linalg.norm(centres[:, None, :] - home[None, :, :], axis=2))
    return distance / max(distance.max(), 1e-12)


# ---------------------------------------------------------------------------------------------------
# Refinement: Lloyd-style rounds of a HiGHS LP over a sparse candidate set


def _problem(
    units: _Units,
    territory: np.ndarray,
    neighbours: np.ndarray,
    capacity: np.ndarray,
    tolerance: np.ndarray,
    ramp: np.ndarray,
    budget_share: np.ndarray,
    fixed: np.ndarray,
) -> _Problem:
    """Bands around each territory's target, capacities, the disruption budget, cost scales and
    candidate sources; `fixed` marks the units no solve moves."""
    k = len(capacity)
    seq = ~units.geo
    industry = units.industry[seq] + 1
    n_industries = int(units.industry.max(initial=UNKNOWN_INDUSTRY)) + 2
    counts = np.zeros((k, n_industries))
    np.add.at(counts, (territory[seq], industry), units.criteria[seq, COUNT])
    moved = (units.owner >= 0) & (units.owner != territory)
    pinned_moves = units.criteria[fixed & moved][:, [COUNT, POTENTIAL]].sum(axis=0)
    target = units.criteria.sum(axis=0)[None, :] * (ramp / ramp.sum())[:, None]
    problem = _Problem(
        k=k,
        target=target,
        base_load=_fixed_totals(units, territory, np.flatnonzero(~fixed), k),
        band=with_whole_floor(tolerance * BAND_SHARE_OF_TOLERANCE, target),
        repair_band=with_whole_floor(tolerance * REPAIR_BAND_SHARE_OF_TOLERANCE, target),
        exact_band=with_whole_floor(tolerance * (1 - EXACT_BAND_MARGIN), target),
        capacity=capacity,
        typical_km=_typical_km(units, territory, k),
        neighbours=neighbours,
        industry_share=counts / np.maximum(counts.sum(axis=0), 1.0),
        industry_home=counts.argmax(axis=0),
        run_length=max(seq.sum() / k, 1.0),
        centres=np.empty((k, 3)),
        sequence_centres=np.empty(k),
        budget=budget_share * units.criteria[:, [COUNT, POTENTIAL]].sum(axis=0) - pinned_moves,
    )
    _recentre(problem, _subset(units, ~fixed), territory[~fixed])
    return problem


def with_whole_floor(band: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Relative band per criterion, widened for whole-number criteria to one account of the mean target."""
    floor = np.zeros_like(band)
    mean = target.mean(axis=0)
    floor[list(WHOLE_CRITERIA)] = 1 / np.maximum(mean[list(WHOLE_CRITERIA)], 1.0)
    return np.maximum(band, floor)


def _territory_centres(units: _Units, territory: np.ndarray, k: int) -> np.ndarray:
    """Centre of each territory's geo units (NaN for a territory without any)."""
    geo = units.geo
    return group_centres(units.xyz[geo], units.criteria[geo, COUNT], territory[geo], k)


def _recentre(problem: _Problem, units: _Units, territory: np.ndarray) -> None:
    """Move the territory centres, on the map and in the industry order, to their current units."""
    problem.centres = _territory_centres(units, territory, problem.k)
    seq = ~units.geo
    weight = units.criteria[seq, COUNT]
    position = np.bincount(territory[seq], weight * units.sequence[seq], problem.k)
    with np.errstate(invalid="ignore", divide="ignore"):
        problem.sequence_centres = position / np.bincount(territory[seq], weight, problem.k)


def _typical_km(units: _Units, territory: np.ndarray, k: int) -> float:
    """Median distance from a geo unit to its territory centre: the yardstick of every cost weight."""
    if not units.geo.any():
        return 1.0
    centres = _territory_centres(units, territory, k)
    median = float(np.median(great_circle_km(units.xyz[units.geo], centres[territory[units.geo]])))
    return median if median > 0 else 1.0


def _refine(units: _Units, territory: np.ndarray, problem: _Problem, log: _SolverLog) -> np.ndarray:
    """Recentre, let the LP move cells to better territories within the bands, repeat; then repair."""
    items = _items(units, territory, problem)
    current = _majority(items.of_unit, territory, items.size)
    support = (np.arange(items.size), current)
    solution = None
    for _ in range(REFINE_ROUNDS):
        _recentre(problem, units, territory)
        rows, cols = _candidates(items, current, support, problem)
        cost = _pair_costs(items, rows, cols, problem)
        moves = _pair_moves(items, rows, cols)
        x = _solve(log, "refinement LP", rows, cols, cost, items.criteria, None, problem, moves=moves)
        if x is None:
            break
        solution = (rows, cols, cost, x)
        # The next round keeps this answer's pairs, so this answer stays feasible there.
        support = (rows[x > FRACTIONAL_EPS], cols[x > FRACTIONAL_EPS])
        best = _best_pair(rows, cols, x, items.size)
        if np.array_equal(best, current):
            break
        current = best
        territory = current[items.of_unit]
    exact = units.size * problem.k <= EXACT_MAX_PAIRS
    if solution is not None:
        territory = _repair(units, items, _pin_large_items(items, solution, problem, log), problem, log)
        # In a book where most units are large (cities by population), pinning each to its largest
        # share can leave a territory far outside the band: the largest units then choose in a mixed
        # MIP, and that plan is kept when its worst primary criterion is closer to target.
        if (
            not exact
            and _large_units(units.criteria, problem).mean() > MIXED_LARGE_SHARE
            and not _within_repair_band(units, territory, problem)
        ):
            # A step failing in the alternative is no failure of the plan unless that plan is kept.
            failures = len(log.failures)
            mixed = _mixed_largest(items, solution, problem, log)
            other = None if mixed is None else _repair(units, items, mixed, problem, log)
            if other is not None and (
                _worst_primary(units, other, problem).max() < _worst_primary(units, territory, problem).max()
            ):
                territory = other
            else:
                del log.failures[failures:]
    if exact:
        territory = _exact(units, territory, problem, log)
    return territory


def _items(units: _Units, territory: np.ndarray, problem: _Problem) -> _Items:
    """Cells of neighbouring units of one territory and one owner; each large unit is a cell of its own."""
    levels = int(np.clip(np.floor(np.log2(ITEM_BUDGET / problem.k)), 0, np.log2(CELLS_PER_TERRITORY)))
    count = units.criteria[:, COUNT]
    if units.geo.all():
        cell = _geo_cells(units.xyz, count, territory, levels)
    else:
        # Cells of the industry order never mix industries.
        cell = _group_ids(_sequence_cells(units.sequence, territory, 2**levels), units.industry)
    large = _large_units(units.criteria, problem)
    columns = [territory, cell, np.where(large, np.arange(units.size), -1), units.late > 0]
    of_unit = _group_ids(*columns, units.owner)
    # Owners are dropped from the key when they would multiply the cells (scattered current ownership).
    if of_unit.max() + 1 > 2 * ITEM_BUDGET:
        of_unit = _group_ids(*columns)
    n_items = int(of_unit.max()) + 1
    return _Items(
        of_unit=of_unit,
        criteria=np.column_stack(
            [np.bincount(of_unit, units.criteria[:, j], n_items) for j in range(len(CRITERIA))]
        ),
        xyz=group_centres(units.xyz, count, of_unit, n_items),
        geo=np.bincount(of_unit, units.geo, n_items) > 0,
        industry=_majority(of_unit, units.industry, n_items),
        owner=_majority(of_unit, units.owner, n_items),
        large=np.bincount(of_unit, large, n_items) > 0,
        sequence=np.bincount(of_unit, count * units.sequence, n_items) / np.bincount(of_unit, count, n_items),
        late=np.bincount(of_unit, units.late, n_items),
    )


def _unit_items(units: _Units, problem: _Problem) -> _Items:
    """Every unit as an item of its own, for the repair steps."""
    return _Items(
        np.arange(units.size),
        units.criteria,
        units.xyz,
        units.geo,
        units.industry,
        units.owner,
        _large_units(units.criteria, problem),
        units.sequence,
        units.late,
    )


def _large_units(criteria: np.ndarray, problem: _Problem) -> np.ndarray:
    """Rows holding more than LARGE_UNIT_SHARE of the band's half-width of some criterion."""
    return (criteria > LARGE_UNIT_SHARE * problem.band * problem.target.mean(axis=0)).any(axis=1)


def _geo_cells(xyz: np.ndarray, weight: np.ndarray, group: np.ndarray, levels: int) -> np.ndarray:
    """Cell of each point: every group halved `levels` times along its principal axis, all at once."""
    cell = group.astype(np.int64)
    for _ in range(levels):
        n = int(cell.max()) + 1
        total = np.bincount(cell, weight, n)
        mean = np.column_stack([np.bincount(cell, weight * xyz[:, d], n) for d in range(3)])
        centred = xyz - (mean / np.maximum(total, 1e-12)[:, None])[cell]
        cov = np.zeros((n, 3, 3))
        for a in range(3):
            for b in range(a, 3):
                cov[:, a, b] = cov[:, b, a] = np.bincount(cell, weight * centred[:, a] * centred[:, b], n)
        axis = np.linalg.eigh(cov)[1][:, :, -1]
        order = np.lexsort((np.einsum("ij,ij->i", centred, axis[cell]), cell))
        before = np.cumsum(weight[order]) - weight[order] - np.r_[0.0, np.cumsum(total)][cell[order]]
        right = np.empty(len(cell), dtype=np.int64)
        right[order] = before + weight[order] / 2 > total[cell[order]] / 2
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
    items: _Items, current: np.ndarray, support: tuple[np.ndarray, np.ndarray], problem: _Problem
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate (item, territory) pairs: the support given (the previous answer), staying, the
    current owner's territory and, with coordinates, the nearest territory centres, or without, the
    neighbouring runs of the industry order and the territory holding most of the item's industry."""
    every = np.arange(items.size)
    seq = ~items.geo
    owned = items.owner >= 0
    rows = [support[0], every, every[owned], every[seq]]
    cols = [support[1], current, items.owner[owned], problem.industry_home[items.industry[seq] + 1]]
    for side in range(2):
        neighbour = problem.neighbours[current, side]
        ok = seq & (neighbour >= 0)
        rows.append(every[ok])
        cols.append(neighbour[ok])
    placed = np.isfinite(problem.centres[:, 0])
    valid = np.flatnonzero(placed)
    if items.geo.any() and valid.size:
        n_near = min(NEAREST_CANDIDATES, valid.size)
        near = cKDTree(problem.centres[valid]).query(items.xyz[items.geo], k=n_near)[1].reshape(-1, n_near)
        rows.append(np.repeat(every[items.geo], n_near))
        cols.append(valid[near].ravel())
    # Territories without a geo unit (in books with fewer units than reps) have no centre to be near:
    # every geo item may go there.
    if items.geo.any() and not placed.all():
        rows.append(np.repeat(every[items.geo], (~placed).sum()))
        cols.append(np.tile(np.flatnonzero(~placed), items.geo.sum()))
    pairs = np.unique(np.concatenate(rows).astype(np.int64) * problem.k + np.concatenate(cols))
    return pairs // problem.k, pairs % problem.k


def _pair_costs(items: _Items, rows: np.ndarray, cols: np.ndarray, problem: _Problem) -> np.ndarray:
    """Cost of each pair, in typical distances per account, plus leaving the current owner.

    With coordinates it is the distance to the territory centre. Without, the industry order is the map:
    the distance (in runs) to the territory's centre in that order, plus the share of the item's
    industry held by other territories.
    """
    geo = items.geo[rows]
    cost = np.empty(len(rows))
    cost[geo] = great_circle_km(items.xyz[rows[geo]], problem.centres[cols[geo]]) / problem.typical_km
    seq_rows, seq_cols = rows[~geo], cols[~geo]
    cost[~geo] = np.abs(items.sequence[seq_rows] - problem.sequence_centres[seq_cols]) / problem.run_length
    cost[~geo] += COHESION_WEIGHT * (1 - problem.industry_share[seq_cols, items.industry[seq_rows] + 1])
    cost = np.where(np.isnan(cost), UNPLACED_DISTANCE, cost)
    owner = items.owner[rows]
    moved = (owner >= 0) & (owner != cols)
    cost += CONTINUITY_WEIGHT * moved
    return items.criteria[rows, COUNT] * cost + LATE_STAGE_WEIGHT * moved * items.late[rows]


def _pair_moves(items: _Items, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Accounts and potential each pair takes away from the item's current owner (0 when it stays)."""
    owner = items.owner[rows]
    moved = (owner >= 0) & (owner != cols)
    return items.criteria[rows][:, [COUNT, POTENTIAL]] * moved[:, None]


def _pin_large_items(
    items: _Items, solution: tuple[np.ndarray, ...], problem: _Problem, log: _SolverLog
) -> tuple[np.ndarray, ...]:
    """If the LP split a large unit, pin every large unit to its largest share and re-solve around them,
    so that only small units are left for the integer repair."""
    rows, cols, cost, x = solution
    if not (_fractional(rows, x, items.size) & items.large).any():
        return solution
    best = _best_pair(rows, cols, x, items.size)
    keep = ~items.large[rows] | (cols == best[rows])
    rows, cols, cost = rows[keep], cols[keep], cost[keep]
    moves = _pair_moves(items, rows, cols)
    x = _solve(
        log, "LP around pinned large units", rows, cols, cost, items.criteria, None, problem, moves=moves
    )
    return solution if x is None else (rows, cols, cost, x)


def _mixed_largest(
    items: _Items, solution: tuple[np.ndarray, ...], problem: _Problem, log: _SolverLog
) -> tuple[np.ndarray, ...] | None:
    """The last LP again with the largest units (above HUGE_UNIT_SHARE band half-widths) whole, chosen
    by a mixed MIP, and then pinned; the other units stay shares. None when there is no such unit or
    the MIP fails."""
    rows, cols, cost, _ = solution
    huge = (items.criteria > HUGE_UNIT_SHARE * problem.band * problem.target.mean(axis=0)).any(axis=1)
    if not huge.any():
        return None
    x = _solve(
        log, "mixed MIP for the largest units", rows, cols, cost, items.criteria, None, problem,
        moves=_pair_moves(items, rows, cols), whole=huge[rows],
    )
    if x is None:
        return None
    best = _best_pair(rows, cols, x, items.size)
    keep = ~huge[rows] | (cols == best[rows])
    return rows[keep], cols[keep], cost[keep], x[keep]


# ---------------------------------------------------------------------------------------------------
# The HiGHS models


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
    moves: np.ndarray | None = None,
    exact: bool = False,
    hard: np.ndarray | None = None,
    start: np.ndarray | None = None,
    whole: np.ndarray | None = None,
) -> np.ndarray | None:
    """Share of each candidate (row item, column territory) pair in the cheapest assignment that keeps
    every territory (items plus the `fixed` totals) in its band and under capacity; None on failure.

    Bands and capacities are elastic: leaving them costs a high price per unit of deviation, so the
    model always has a solution and small or lumpy books report their deviation instead of failing.
    The MIP (integral) gets the wider repair band and pairs that are 0 or 1. With `moves` (accounts and
    potential each pair takes from its current owner) the disruption budget is a row too, elastic at a
    lower price than balance: balance comes first, then the budget, then shape.

    The exact MIP gets the policy's own band and a tighter gap; the criteria marked in `hard` may not
    leave it at all (as in the exact MILP baseline), which cuts the search far more than high prices
    do. With `start` (a territory per item among the pairs) the start is returned instead of the
    MIP's answer when that answer is no cheaper. With `whole` (a mask of pairs), the LP
    is a mixed model: those pairs are 0 or 1, the others shares, in the LP's own band.
    """
    k, n_crit, n_pairs = problem.k, len(CRITERIA), len(rows)
    item, pair_item = np.unique(rows, return_inverse=True)
    load = criteria[rows]
    fixed = problem.base_load if fixed is None else problem.base_load + fixed
    band_row = (cols[:, None] * n_crit + np.arange(n_crit)).ravel()
    bounded = np.flatnonzero(np.isfinite(problem.capacity))
    cap_row = np.full(k, -1)
    cap_row[bounded] = np.arange(bounded.size)
    capped = cap_row[cols] >= 0
    n_budget = 0 if moves is None or not moves.any() else 2
    n_band, n_rows = k * n_crit, 2 * k * n_crit + bounded.size + n_budget
    # Slack columns, one per row, measure deviations in means of their criterion (budget rows: in
    # accounts, potential counted at the mean potential per account).
    per_account = problem.target.sum(axis=0) / max(problem.target[:, COUNT].sum(), 1.0)
    slack_scale = np.r_[
        problem.target.ravel(),
        problem.target.ravel(),
        np.full(bounded.size, problem.target[:, COUNT].mean()),
        [1.0, max(per_account[POTENTIAL], 1e-12)][:n_budget],
    ]
    pair_col = np.repeat(np.arange(n_pairs), n_crit)
    budget_values = [] if n_budget == 0 else moves.T.ravel()
    budget_rows = [] if n_budget == 0 else np.repeat(2 * n_band + bounded.size + np.arange(2), n_pairs)
    budget_cols = [] if n_budget == 0 else np.tile(np.arange(n_pairs), 2)
    a_ub = sparse.csr_matrix(
        (
            np.r_[load.ravel(), -load.ravel(), load[capped, COUNT], budget_values, -slack_scale],
            (
                np.r_[
                    band_row,
                    n_band + band_row,
                    2 * n_band + cap_row[cols[capped]],
                    budget_rows,
                    np.arange(n_rows),
                ],
                np.r_[pair_col, pair_col, np.flatnonzero(capped), budget_cols, n_pairs + np.arange(n_rows)],
            ),
        ),
        shape=(n_rows, n_pairs + n_rows),
    )
    band = problem.exact_band if exact else problem.repair_band if integral else problem.band
    b_ub = np.r_[
        (problem.target * (1 + band) - fixed).ravel(),
        (fixed - problem.target * (1 - band)).ravel(),
        problem.capacity[bounded] - fixed[bounded, COUNT],
        problem.budget[:n_budget],
    ]
    # Each row in units of its slack (means of its criterion): potential in currency units next to
    # accounts in ones left the MIP badly scaled, and HiGHS slow to close its gap.
    row_scale = 1 / np.where(slack_scale > 0, slack_scale, 1.0)
    a_ub = sparse.diags(row_scale) @ a_ub
    b_ub = b_ub * row_scale
    a_eq = sparse.csr_matrix(
        (np.ones(n_pairs), (pair_item, np.arange(n_pairs))), shape=(len(item), n_pairs + n_rows)
    )
    mip = integral or whole is not None
    penalty = _slack_penalty(cost, load[:, COUNT], problem) * (MIP_PENALTY_FACTOR if mip else 1.0)
    budget_penalty = penalty * BUDGET_SHARE_OF_BAND_PENALTY / max(problem.target[:, COUNT].mean(), 1.0)
    c = np.r_[
        cost,
        np.tile(penalty * CRITERION_SLACK_WEIGHT, 2 * k),
        np.full(bounded.size, penalty * CAPACITY_PENALTY_FACTOR),
        np.full(n_budget, budget_penalty),
    ]
    slack_upper = np.full(n_rows, np.inf)
    if hard is not None:
        hard_rows = np.tile(hard, 2 * k)
        slack_upper[: 2 * n_band][hard_rows] = 0.0
    if integral:
        gap = EXACT_RELATIVE_GAP if exact else MIP_RELATIVE_GAP
        x = _run_mip(log, step, c, a_ub, b_ub, a_eq, n_pairs, slack_upper, gap, exact)
        if x is not None and start is not None:
            x_start = _start_point(rows, cols, start, a_ub, b_ub, slack_upper)
            if x_start is not None and c @ x_start <= c @ x:
                x = x_start
    elif whole is not None:
        x = _run_mip(log, step, c, a_ub, b_ub, a_eq, n_pairs, slack_upper, MIXED_RELATIVE_GAP, False, whole)
    else:
        x = _run_lp(log, step, c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=np.ones(len(item)), bounds=(0, None))
    return None if x is None else np.clip(x[:n_pairs], 0.0, 1.0)


def _exact(units: _Units, territory: np.ndarray, problem: _Problem, log: _SolverLog) -> np.ndarray:
    """Lloyd rounds of an integer assignment from the plan so far: recentre, give every unit the
    territory of least cost with every territory in the policy's band, until a round gains little.

    A round first offers each unit its few cheapest territories (and its current one) with every
    reachable band hard (HiGHS); when no plan among those meets them all, CP-SAT offers every territory
    with only the primary criteria hard. A HiGHS round never returns a plan worse than its start.
    """
    unit_items = _unit_items(units, problem)
    # Bands no plan can meet (a lumpy criterion, whole accounts) stay elastic in the hard rounds.
    bound = _deviation_lower_bound(units.criteria, problem.target[:, COUNT])
    hard = np.array([bound[name] <= problem.exact_band[j] for j, name in enumerate(CRITERIA)])
    primary_only = np.isin(np.arange(len(CRITERIA)), PRIMARY_CRITERIA)
    # The plan so far may be outside the bands (lumpy books): the first round's answer replaces it.
    best, best_objective = territory, np.inf
    previous = np.inf
    for _ in range(EXACT_ROUNDS):
        _recentre(problem, units, territory)
        # Every reachable band hard first, among the cheap pairs; bands that cannot all hold at once
        # (lumpy tiers in a small book) leave only the primary criteria hard, among all pairs.
        rows, cols, cost, moves = _exact_pairs(unit_items, territory, problem, EXACT_CANDIDATES)
        solved = _exact_round(log, rows, cols, cost, units, problem, moves, territory, hard)
        relaxed = hard & primary_only
        if solved is None and relaxed.any():
            # HiGHS took minutes to find any plan here (Fortune 500 over 20 reps); CP-SAT, started from
            # the plan so far, finds good ones in seconds, and a deterministic time limit keeps it exact
            # to repeat.
            rows, cols, cost, moves = _exact_pairs(unit_items, territory, problem, problem.k)
            solved = _solve_cpsat(log, rows, cols, cost, units.criteria, problem, moves, territory, relaxed)
        if solved is None:
            # No plan meets the bands: one elastic round, kept only if no primary criterion's worst
            # territory gets worse (a cheaper price mix is no reason to overload a rep further).
            solved = _exact_round(log, rows, cols, cost, units, problem, moves, territory, None)
            if solved is not None and (
                _worst_primary(units, solved, problem) <= _worst_primary(units, territory, problem) + 1e-9
            ).all():
                best = solved
            break
        if np.array_equal(solved, territory):
            break
        objective = _plan_cost(unit_items, solved, problem)
        if objective < best_objective:
            best, best_objective = solved, objective
        territory = solved
        # Later rounds only polish: stop once a round gains less than EXACT_MIN_GAIN of the objective.
        if objective > previous * (1 - EXACT_MIN_GAIN):
            break
        previous = objective
    _recentre(problem, units, best)
    return best


def _plan_cost(units: _Items, territory: np.ndarray, problem: _Problem) -> float:
    """What a plan costs with the territory centres at its own units (the objective a Lloyd round
    only approximates, as it prices pairs against the centres before it)."""
    _recentre(problem, units, territory)
    every = np.arange(units.size)
    return float(_pair_costs(units, every, territory, problem).sum())


def _exact_pairs(
    units: _Items, territory: np.ndarray, problem: _Problem, candidates: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of an exact round, with their costs and moves: each unit's `candidates` cheapest
    territories, its current one, and any territory without a centre yet (far territories only slow
    the MIP down, a balanced plan rarely uses them)."""
    rows = np.repeat(np.arange(units.size), problem.k)
    cols = np.tile(np.arange(problem.k), units.size)
    cost = _pair_costs(units, rows, cols, problem)
    if candidates < problem.k:
        order = np.lexsort((cols, cost, rows))
        rank = np.arange(len(order)) - np.searchsorted(rows[order], rows[order])
        keep = np.zeros(len(rows), dtype=bool)
        keep[order[rank < candidates]] = True
        keep |= (cols == territory[rows]) | ~np.isfinite(problem.centres[cols, 0]) & units.geo[rows]
        rows, cols, cost = rows[keep], cols[keep], cost[keep]
    return rows, cols, cost, _pair_moves(units, rows, cols)


def _exact_round(
    log: _SolverLog,
    rows: np.ndarray,
    cols: np.ndarray,
    cost: np.ndarray,
    units: _Units,
    problem: _Problem,
    moves: np.ndarray,
    start: np.ndarray,
    hard: np.ndarray | None,
) -> np.ndarray | None:
    """Territory per unit from one exact round (the start when the MIP found nothing cheaper), or None
    when the MIP reports no solution."""
    x = _solve(
        log,
        "exact assignment MIP",
        rows,
        cols,
        cost,
        units.criteria,
        None,
        problem,
        integral=True,
        moves=moves,
        exact=True,
        hard=hard,
        start=start,
    )
    return None if x is None else _best_pair(rows, cols, x, units.size)


def _solve_cpsat(
    log: _SolverLog,
    rows: np.ndarray,
    cols: np.ndarray,
    cost: np.ndarray,
    criteria: np.ndarray,
    problem: _Problem,
    moves: np.ndarray,
    hint: np.ndarray,
    hard: np.ndarray,
) -> np.ndarray | None:
    """Territory per item of the cheapest integer assignment among the pairs (CP-SAT, hinted with the
    plan so far) with every territory in the policy's band and under capacity and the disruption budget
    kept; elastic like `_solve`, at the MIP's price, except the bands of the criteria marked in `hard`.
    One worker and a deterministic time limit: the same book always gets the same plan. None when
    CP-SAT finds no plan inside the hard bands."""
    k, n_crit = problem.k, len(CRITERIA)
    started = time.perf_counter()
    model = cp_model.CpModel()
    series = model.new_bool_var_series("x", pd.RangeIndex(len(rows)))
    x = series.to_list()
    by_item = np.argsort(rows, kind="stable")
    for pairs in np.split(by_item, np.flatnonzero(np.diff(rows[by_item])) + 1):
        model.add_exactly_one([x[p] for p in pairs])
    mean = problem.target.mean(axis=0)
    whole = np.isin(np.arange(n_crit), WHOLE_CRITERIA)
    per_mean = np.where(whole, mean, CPSAT_LOAD_SCALE)
    scale = per_mean / np.maximum(mean, 1e-300)
    load = np.rint(criteria[rows] * scale).astype(np.int64)
    # Rounding each continuous load may add up to half a unit per item: the bands shrink by that much.
    margin = np.where(whole, 0, len(np.unique(rows)) // 2 + 1)
    hi = np.floor((problem.target * (1 + problem.exact_band) - problem.base_load) * scale) - margin
    lo = np.ceil((problem.target * (1 - problem.exact_band) - problem.base_load) * scale) + margin
    penalty = _slack_penalty(cost, criteria[rows, COUNT], problem) * MIP_PENALTY_FACTOR * CPSAT_COST_SCALE
    hinted = cols == hint[rows]
    # The hint is complete (slacks included), so CP-SAT starts from the plan so far.
    slack_terms, slack_prices, slack_hint = [], [], []

    def elastic(
        pairs: np.ndarray, coefficients: np.ndarray, low: float | None, high: float, price: float | None
    ) -> None:
        """sum(coefficients * x[pairs]) within [low, high], each unit outside costing `price`
        (no unit outside at all when price is None)."""
        expression = cp_model.LinearExpr.weighted_sum([x[p] for p in pairs], coefficients.tolist())
        if price is None:
            model.add_linear_constraint(expression, int(low), int(high))
            return
        reach = int(np.abs(coefficients).sum() + abs(high) + abs(low or 0)) + 1
        value = int(coefficients[hinted[pairs]].sum())
        over = model.new_int_var(0, reach, "")
        model.add(expression - over <= int(high))
        slack_terms.append(over)
        slack_hint.append(max(value - int(high), 0))
        if low is not None:
            under = model.new_int_var(0, reach, "")
            model.add(expression + under >= int(low))
            slack_terms.append(under)
            slack_hint.append(max(int(low) - value, 0))
        slack_prices.extend([max(round(price), 1)] * (1 if low is None else 2))

    for t in range(k):
        pairs = np.flatnonzero(cols == t)
        for j in np.flatnonzero(mean > 0):
            price = penalty * CRITERION_SLACK_WEIGHT[j] / per_mean[j]
            elastic(pairs, load[pairs, j], lo[t, j], hi[t, j], None if hard[j] else price)
        if np.isfinite(problem.capacity[t]):
            high = problem.capacity[t] - problem.base_load[t, COUNT]
            elastic(pairs, load[pairs, COUNT], None, high, penalty * CAPACITY_PENALTY_FACTOR / mean[COUNT])
    # Budget rows count accounts, potential at the mean potential per account, as in `_solve`.
    per_account = np.array([1.0, max(mean[POTENTIAL] / max(mean[COUNT], 1.0), 1e-12)])
    for j in np.flatnonzero(moves.any(axis=0)):
        moved = np.flatnonzero(moves[:, j] > 0)
        coefficients = np.rint(moves[moved, j] / per_account[j] * CPSAT_BUDGET_SCALE).astype(np.int64)
        high = np.floor(problem.budget[j] / per_account[j] * CPSAT_BUDGET_SCALE)
        price = penalty * BUDGET_SHARE_OF_BAND_PENALTY / max(mean[COUNT], 1.0) / CPSAT_BUDGET_SCALE
        elastic(moved, coefficients, None, high, price)
    model.minimize(
        cp_model.LinearExpr.weighted_sum(x, np.rint(cost * CPSAT_COST_SCALE).astype(np.int64).tolist())
        + cp_model.LinearExpr.weighted_sum(slack_terms, slack_prices)
    )
    model.proto.solution_hint.vars.extend([v.index for v in x + slack_terms])
    model.proto.solution_hint.values.extend(hinted.astype(np.int64).tolist() + slack_hint)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = EXACT_ROUND_TIME_LIMIT_S
    solver.parameters.max_deterministic_time = CPSAT_DETERMINISTIC_LIMIT
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    status = solver.solve(model)
    log.seconds += time.perf_counter() - started
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    step = "exact assignment (CP-SAT)"
    log.steps[step] = log.steps.get(step, 0) + 1
    values = solver.boolean_values(series).to_numpy(dtype=float)
    return _best_pair(rows, cols, values, int(rows.max()) + 1)


def _worst_primary(units: _Units, territory: np.ndarray, problem: _Problem) -> np.ndarray:
    """Largest relative deviation from target over the territories, per primary criterion."""
    totals = problem.base_load + _totals(units.criteria, territory, problem.k)
    primary = list(PRIMARY_CRITERIA)
    target = problem.target[:, primary]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(np.abs(totals[:, primary] / target - 1)).max(axis=0)


def _start_point(
    rows: np.ndarray,
    cols: np.ndarray,
    start: np.ndarray,
    a_ub: sparse.csr_matrix,
    b_ub: np.ndarray,
    slack_upper: np.ndarray,
) -> np.ndarray | None:
    """The start as a point of `_solve`'s model (pairs, then the least slacks that make it feasible),
    or None when it needs a slack the model forbids."""
    pairs = (cols == start[rows]).astype(float)
    slack = np.maximum(a_ub[:, : len(rows)] @ pairs - b_ub, 0.0)
    if (slack > slack_upper + FRACTIONAL_EPS).any():
        return None
    return np.r_[pairs, slack]


def _slack_penalty(cost: np.ndarray, count: np.ndarray, problem: _Problem) -> float:
    """Price of a deviation of one mean, above any rearrangement of accounts that would avoid it."""
    per_account = cost / np.maximum(count, 1.0)
    spread = float(per_account.max() - per_account.min()) if len(cost) else 0.0
    return BAND_SLACK_PENALTY * max(problem.target[:, COUNT].mean(), 1.0) * max(spread, 1.0)


def _run_lp(log: _SolverLog, step: str, c: np.ndarray, **model) -> np.ndarray | None:
    """Solve an LP with HiGHS; its solution only when HiGHS reports it optimal."""
    started = time.perf_counter()
    result = linprog(c, method="highs", options={"time_limit": LP_TIME_LIMIT_S}, **model)
    log.seconds += time.perf_counter() - started
    return _checked(log, step, result)


def _run_mip(
    log: _SolverLog,
    step: str,
    c: np.ndarray,
    a_ub: sparse.csr_matrix,
    b_ub: np.ndarray,
    a_eq: sparse.csr_matrix,
    n_binary: int,
    slack_upper: np.ndarray,
    gap: float,
    exact: bool,
    whole: np.ndarray | None = None,
) -> np.ndarray | None:
    """Solve a MIP with HiGHS (binary pair columns first, or only those marked `whole`, continuous
    slacks after); its solution only when HiGHS reports it optimal within `gap`. An exact round that hits its time guard keeps the
    feasible point found by then; infeasibility there is no failure (the elastic model follows)."""
    started = time.perf_counter()
    result = milp(
        c,
        integrality=np.r_[np.ones(n_binary) if whole is None else whole, np.zeros(len(slack_upper))],
        bounds=Bounds(0, np.r_[np.ones(n_binary), slack_upper]),
        constraints=[LinearConstraint(a_ub, -np.inf, b_ub), LinearConstraint(a_eq, 1, 1)],
        options={
            "time_limit": EXACT_ROUND_TIME_LIMIT_S if exact else MIP_TIME_LIMIT_S,
            "mip_rel_gap": gap,
        },
    )
    log.seconds += time.perf_counter() - started
    if exact and result.status == 1 and _feasible(result.x, a_ub, b_ub, a_eq, n_binary):
        log.steps[step] = log.steps.get(step, 0) + 1
        return result.x
    if exact and result.status == 2:
        return None
    return _checked(log, step, result)


def _feasible(
    x: np.ndarray | None, a_ub: sparse.csr_matrix, b_ub: np.ndarray, a_eq: sparse.csr_matrix, n_binary: int
) -> bool:
    """Whether a point a time-limited MIP left is a whole assignment inside every row (HiGHS also hands
    back zeros when it found nothing)."""
    if x is None:
        return False
    pairs = x[:n_binary]
    whole = np.all(np.minimum(np.abs(pairs), np.abs(pairs - 1)) <= FRACTIONAL_EPS)
    return bool(
        whole and np.allclose(a_eq @ x, 1.0) and (a_ub @ x <= b_ub + FRACTIONAL_EPS * np.maximum(1, np.abs(b_ub))).all()
    )


def _checked(log: _SolverLog, step: str, result) -> np.ndarray | None:
    """The solver's x when its status is optimal, else None with the failure logged (never zeros)."""
    if result.status == 0 and result.x is not None:
        log.steps[step] = log.steps.get(step, 0) + 1
        return result.x
    log.failures.append(f"{step}: HiGHS status {result.status} ({result.message})")
    return None


def _best_pair(rows: np.ndarray, cols: np.ndarray, x: np.ndarray, n_items: int) -> np.ndarray:
    """Territory with the largest share for each item (-1 for an item without pairs)."""
    order = np.lexsort((-x, rows))
    first = order[_first_of_runs(rows[order])]
    best = np.full(n_items, -1, dtype=np.int64)
    best[rows[first]] = cols[first]
    return best


def _fractional(rows: np.ndarray, x: np.ndarray, n_items: int) -> np.ndarray:
    """Items whose largest share is below one (split between territories, or without pairs)."""
    largest = np.zeros(n_items)
    np.maximum.at(largest, rows, x)
    return largest < 1 - FRACTIONAL_EPS


# ---------------------------------------------------------------------------------------------------
# Integer repair


def _repair(
    units: _Units, items: _Items, solution: tuple[np.ndarray, ...], problem: _Problem, log: _SolverLog
) -> np.ndarray:
    """Integer assignment from the last LP.

    Cells the LP split are opened into their units and an LP over just those units shares them out.
    Units still split go to their largest share unless that leaves a territory outside the repair band
    or over capacity; then a MIP rounds them, and if that is not enough either, a second MIP also lets
    the units each territory can give up most cheaply move, trading a lumpy unit against a few small
    ones. On a solver failure the rounding before it is kept.
    """
    rows, cols, _, x = solution
    territory = _best_pair(rows, cols, x, items.size)[items.of_unit]
    free = np.flatnonzero(_fractional(rows, x, items.size)[items.of_unit])
    keep = x > FRACTIONAL_EPS
    rows, cols = _open_cells(items, rows[keep], cols[keep], free)
    unit_items = _unit_items(units, problem)
    if free.size > np.unique(items.of_unit[free]).size:
        cost = _pair_costs(unit_items, rows, cols, problem)
        fixed = _fixed_totals(units, territory, free, problem.k)
        x = _solve(log, "repair LP over split cells", rows, cols, cost, units.criteria, fixed, problem)
        if x is None:
            return territory
        territory[free] = _best_pair(rows, cols, x, units.size)[free]
        still = _fractional(rows, x, units.size)[rows] & (x > FRACTIONAL_EPS)
        rows, cols = rows[still], cols[still]
    if _within_repair_band(units, territory, problem):
        return territory
    if rows.size:
        territory = _settle(units, unit_items, territory, rows, cols, problem, log, "integer rounding MIP")
    if _within_repair_band(units, territory, problem):
        return territory
    flex_rows, flex_cols = _flexible_pairs(unit_items, territory, problem)
    pairs = np.unique(np.r_[rows, flex_rows] * problem.k + np.r_[cols, flex_cols])
    return _settle(
        units,
        unit_items,
        territory,
        pairs // problem.k,
        pairs % problem.k,
        problem,
        log,
        "integer repair MIP",
    )


def _open_cells(
    items: _Items, rows: np.ndarray, cols: np.ndarray, free: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs of each free unit: the territories its cell was split between."""
    by_item = np.argsort(rows, kind="stable")
    start = np.searchsorted(rows[by_item], np.arange(items.size + 1))
    item = items.of_unit[free]
    n = start[item + 1] - start[item]
    offsets = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    return np.repeat(free, n), cols[by_item][np.repeat(start[item], n) + offsets]


def _fixed_totals(units: _Units, territory: np.ndarray, free: np.ndarray, k: int) -> np.ndarray:
    """Criteria totals per territory of the units a repair step leaves where they are."""
    fixed = np.ones(units.size, dtype=bool)
    fixed[free] = False
    return np.column_stack(
        [np.bincount(territory[fixed], units.criteria[fixed, j], k) for j in range(len(CRITERIA))]
    )


def _within_repair_band(units: _Units, territory: np.ndarray, problem: _Problem) -> bool:
    """Whether every territory is inside the repair band and under its capacity."""
    totals = problem.base_load + _fixed_totals(units, territory, np.zeros(0, dtype=int), problem.k)
    active = problem.target.min(axis=0) > 0
    deviation = np.abs(totals[:, active] / problem.target[:, active] - 1)
    return bool(
        (deviation <= problem.repair_band[active]).all() and (totals[:, COUNT] <= problem.capacity).all()
    )


def _settle(
    units: _Units,
    unit_items: _Items,
    territory: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    problem: _Problem,
    log: _SolverLog,
    step: str,
) -> np.ndarray:
    """Territory per unit after a MIP choosing among the given pairs, every other unit staying put."""
    free = np.unique(rows)
    cost = _pair_costs(unit_items, rows, cols, problem)
    fixed = _fixed_totals(units, territory, free, problem.k)
    x = _solve(log, step, rows, cols, cost, units.criteria, fixed, problem, integral=True)
    if x is None:
        return territory
    settled = territory.copy()
    settled[free] = _best_pair(rows, cols, x, units.size)[free]
    return settled


def _flexible_pairs(units: _Items, territory: np.ndarray, problem: _Problem) -> tuple[np.ndarray, np.ndarray]:
    """Pairs to stay and to move for the units each territory can give up most cheaply per unit of
    each criterion (levers for potential, for workload and for count alike)."""
    rows, cols = _candidates(units, territory, (np.arange(units.size), territory), problem)
    cost = _pair_costs(units, rows, cols, problem)
    stay = cols == territory[rows]
    stay_cost = np.zeros(units.size)
    stay_cost[rows[stay]] = cost[stay]
    move = np.flatnonzero(~stay)
    order = move[np.lexsort((cost[move], rows[move]))]
    best = order[_first_of_runs(rows[order])]
    unit = rows[best]
    regret = cost[best] - stay_cost[unit]
    levers = []
    for j in np.flatnonzero(problem.target.sum(axis=0) > 0):
        # Only units holding some of the criterion are levers for it; the others are never divided by.
        amount = units.criteria[unit, j]
        price = np.divide(regret, amount, out=np.full(len(unit), np.inf), where=amount > 0)
        by_territory = np.lexsort((price, territory[unit]))
        group = territory[unit][by_territory]
        rank = np.arange(len(group)) - np.searchsorted(group, group)
        levers.append(best[by_territory[rank < FLEXIBLE_PER_TERRITORY]])
    chosen = np.unique(np.concatenate(levers))
    return np.r_[rows[chosen], rows[chosen]], np.r_[territory[rows[chosen]], cols[chosen]]


# ---------------------------------------------------------------------------------------------------
# Outputs


def _build_plan(
    acc: _Accounts,
    owners: pd.DataFrame,
    territory: np.ndarray,
    capacity: np.ndarray,
    ramp: np.ndarray,
    basis: str,
    log: _SolverLog,
    policy: TerritoryPolicy,
    warnings: list[str],
    kmeans_baseline: bool,
    bound: dict[str, float],
    dedicated_rep: np.ndarray,
) -> TerritoryPlan:
    """Assemble the published tables, balance figures, compactness and the k-means baseline."""
    k = len(owners)
    rep_ids = owners["rep_id"].to_numpy()
    territory_ids = np.array([f"T{i + 1:0{len(str(k))}d}" for i in range(k)])
    totals = _totals(acc.criteria, territory, k)
    centres = group_centres(acc.xyz, np.ones(len(territory)), territory, k)
    balance = _deviations(totals, ramp)
    shared = np.setdiff1d(np.arange(k), dedicated_rep)
    balance_shared = _deviations(totals[shared], ramp[shared]) if dedicated_rep.size else dict(balance)
    compactness = _compactness(acc.xyz, centres[territory]) if acc.has_geo.any() else None
    baseline = _kmeans_baseline(acc, k, policy.random_seed) if basis == "geo" and kmeans_baseline else {}
    ratio = compactness / baseline["compactness"] if baseline.get("compactness") else None
    # A dedicated territory is judged on potential only: its rep's load is that one account.
    judged = {name: balance[name] if name == CRITERIA[POTENTIAL] else balance_shared[name] for name in balance}
    warnings.extend(_outcome_warnings(judged, totals[:, COUNT], capacity, rep_ids, policy, log))
    steps = [f"{name} x{count}" if count > 1 else name for name, count in log.steps.items()]
    assignments = _assignment_frame(acc, rep_ids, territory, territory_ids, ramp)
    moved = assignments["is_moved"].to_numpy()
    return TerritoryPlan(
        assignments=assignments,
        territories=_territory_frame(
            acc, territory, totals, territory_ids, rep_ids, capacity, ramp, centres, basis
        ),
        balance=balance,
        moved_share=float(moved.mean()) if len(moved) else 0.0,
        moved_potential_share=float(
            acc.criteria[moved, POTENTIAL].sum() / max(acc.criteria[:, POTENTIAL].sum(), 1e-12)
        ),
        baseline=baseline,
        compactness=compactness,
        compactness_vs_kmeans=ratio,
        basis=basis,
        solver={
            "method": "HiGHS: " + ", ".join(steps)
            if steps
            else "none: a single territory takes every account",
            "status": "fallback" if log.failures else "optimal",
            "seconds": round(log.seconds, 3),
        },
        warnings=warnings,
        balance_lower_bound=bound,
        dedicated_territories=territory_ids[dedicated_rep].tolist(),
        balance_shared=balance_shared,
    )


def _totals(criteria: np.ndarray, territory: np.ndarray, k: int) -> np.ndarray:
    """Criteria totals per territory."""
    return np.column_stack([np.bincount(territory, criteria[:, j], k) for j in range(criteria.shape[1])])


def _deviations(totals: np.ndarray, ramp: np.ndarray | None = None) -> dict[str, float]:
    """Largest relative deviation of a territory from its target (the total shared by ramp shares; the
    mean without ramp), per criterion (0 when the total is 0)."""
    share = np.full(len(totals), 1 / len(totals)) if ramp is None else ramp / ramp.sum()
    target = totals.sum(axis=0)[None, :] * share[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = np.nan_to_num(np.abs(totals / target - 1)).max(axis=0)
    return {name: float(spread[j]) for j, name in enumerate(CRITERIA)}


def _compactness(xyz: np.ndarray, centre: np.ndarray) -> float:
    """Sum of great-circle km from each account with coordinates to its territory centre."""
    ok = np.isfinite(xyz[:, 0])
    return float(great_circle_km(xyz[ok], centre[ok]).sum())


def kmeans_assignment(xyz: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain k-means (no balancing) of points on the sphere, fitted on a sample of at most
    KMEANS_SAMPLE of them: each point's cluster, and the cluster centres as unit vectors."""
    sample = (
        xyz
        if len(xyz) <= KMEANS_SAMPLE
        else xyz[np.random.default_rng(seed).choice(len(xyz), KMEANS_SAMPLE, replace=False)]
    )
    model = KMeans(n_clusters=min(k, len(xyz)), n_init=1, random_state=seed).fit(sample)
    return model.predict(xyz), _unit_vectors(model.cluster_centers_)


def _kmeans_baseline(acc: _Accounts, k: int, seed: int) -> dict[str, float]:
    """Balance and compactness of plain k-means on the accounts with coordinates."""
    idx = np.flatnonzero(acc.has_geo)
    label, _ = kmeans_assignment(acc.xyz[idx], k, seed)
    return measure_assignment(acc.xyz[idx], acc.criteria[idx], label, k)


def _outcome_warnings(
    balance: dict[str, float],
    counts: np.ndarray,
    capacity: np.ndarray,
    rep_ids: np.ndarray,
    policy: TerritoryPolicy,
    log: _SolverLog,
) -> list[str]:
    """What the plan could not achieve, and solver steps that fell back to the answer before them."""
    out = [f"solver step failed, the plan keeps the answer from before it: {f}" for f in log.failures]
    off = {name: dev for name, dev in balance.items() if dev > policy.tolerance_of(name)}
    if off:
        figures = ", ".join(
            f"{name} {dev:.1%} (tolerance {policy.tolerance_of(name):.0%})" for name, dev in off.items()
        )
        out.append(f"balance outside the tolerance ({figures}): accounts too few or too lumpy")
    over = np.flatnonzero(counts > capacity)
    if over.size:
        out.append(
            f"{over.size} reps are over capacity, e.g. {rep_ids[over[0]]} with {counts[over[0]]:.0f} accounts"
        )
    return out


def _assignment_frame(
    acc: _Accounts, rep_ids: np.ndarray, territory: np.ndarray, territory_ids: np.ndarray, ramp: np.ndarray
) -> pd.DataFrame:
    """One row per account: territory, rep, previous owner, whether the account changes hands and why."""
    rep = rep_ids[territory]
    moved = pd.notna(acc.previous) & (acc.previous != rep)
    return pd.DataFrame(
        {
            "account_id": acc.ids,
            "territory_id": territory_ids[territory],
            "rep_id": rep,
            "previous_rep_id": acc.previous,
            "is_moved": moved,
            "move_reason": _move_reasons(acc, territory, moved, rep_ids, ramp),
        }
    )


def _move_reasons(
    acc: _Accounts, territory: np.ndarray, moved: np.ndarray, rep_ids: np.ndarray, ramp: np.ndarray
) -> np.ndarray:
    """Why each moved account changed hands (None for the others), most specific reason first: a lock,
    an owner who owns no territory any more, its family, or the balance of the territory it left (the
    criterion on which that territory, as it stood, was furthest over its target)."""
    k = len(rep_ids)
    reasons = np.full(len(acc.ids), None, dtype=object)
    if not moved.any():
        return reasons
    owned = acc.owner >= 0
    before = _totals(acc.criteria[owned], acc.owner[owned], k)
    share = ramp / ramp.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        over = np.nan_to_num(before / (acc.criteria.sum(axis=0)[None, :] * share[:, None]) - 1)
    worst = over.argmax(axis=1)
    new_rep = rep_ids[territory]
    for i in np.flatnonzero(moved):
        if acc.lock[i] >= 0:
            reasons[i] = f"locked to {new_rep[i]}"
        elif acc.owner[i] < 0:
            reasons[i] = f"previous owner {acc.previous[i]} owns no territory in this plan"
        elif acc.parent[i] >= 0 and acc.owner[acc.parent[i]] != acc.owner[i]:
            reasons[i] = f"kept with its parent account {acc.ids[acc.parent[i]]}"
        else:
            j, t = worst[acc.owner[i]], acc.owner[i]
            reasons[i] = (
                f"rebalance: {acc.previous[i]} was {over[t, j]:+.1%} on {CRITERIA[j]}; "
                f"{new_rep[i]} {'has room' if over[territory[i], j] < over[t, j] else 'is nearer'}"
            )
            if acc.late[i]:
                reasons[i] = "late-stage deal moved only to restore balance; " + reasons[i]
    return reasons


def _territory_frame(
    acc: _Accounts,
    territory: np.ndarray,
    totals: np.ndarray,
    territory_ids: np.ndarray,
    rep_ids: np.ndarray,
    capacity: np.ndarray,
    ramp: np.ndarray,
    centres: np.ndarray,
    basis: str,
) -> pd.DataFrame:
    """One row per territory with its totals, tier counts, capacity and centre."""
    k = len(territory_ids)
    known = acc.tier >= 0
    tiers = np.bincount(territory[known] * len(TIERS) + acc.tier[known], minlength=k * len(TIERS)).reshape(
        k, len(TIERS)
    )
    lat, lon = _to_lat_lon(centres)
    return pd.DataFrame(
        {
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
            "ramp_share": ramp,
            "center_latitude": lat,
            "center_longitude": lon,
        }
    )
