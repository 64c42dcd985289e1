"""Rebalance proposals: few account moves that bring the plan back within its balance bands and every rep's
A-tier load back within capacity.

Pure pandas/numpy plus the territory planner. A proposal is a list of moves, each with its reason and the
balance before and after; nothing changes until a person applies it (``apply_moves``).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from ml.policy import BALANCE_CRITERIA, MonitorPolicy, Policy
from ml.territories import assignment_balance, plan_territories

BALANCE_COLUMNS = [f"max_dev_{c}_{when}" for c in BALANCE_CRITERIA for when in ("before", "after")]
MOVE_COLUMNS = [
    "proposal_id", "move_number", "account_id", "tier", "from_rep_id", "to_rep_id", "to_territory_id", "step",
    "reason", "from_a_load_before", "from_a_load_after", "to_a_load_before", "to_a_load_after",
    "max_utilization_before", "max_utilization_after", *BALANCE_COLUMNS,
]


def propose_rebalance(
    accounts: pd.DataFrame, reps: pd.DataFrame, territories: pd.DataFrame, capacity: pd.DataFrame, policy: Policy,
    max_moves: int,
) -> tuple[pd.DataFrame, bool]:
    """The moves that bring the current assignment back within tolerance, and whether they get there.

    `accounts` are the planner's inputs (account_id, coordinates, industry, parent, potential, tier, locks)
    with `owner_rep_id` the rep who owns the account now. Two steps:
    1. balance: when a criterion is outside its band, the planner re-plans from the current owners; it
       keeps every account it can (moves are priced, late-stage deals and locks stay) under a disruption
       budget of at most `max_moves` accounts, so its moves are the ones balance needs;
    2. capacity: while a rep's A-tier load is above ``coverage_alert`` x capacity, that rep's
       lowest-potential A-tier account goes to the rep with the most room (each move removes one account
       of overload, so no smaller set of moves does it).
    Every move row carries the proposal's balance per criterion before and after all its moves.
    """
    current = accounts["owner_rep_id"].astype("string")
    rep_of = current.copy()
    before = assignment_balance(accounts, reps, policy.territories, policy.workload_weights)
    tolerance = {c: policy.territories.tolerance_of(c) for c in BALANCE_CRITERIA}
    moves = []
    if any(before[c] > tolerance[c] for c in BALANCE_CRITERIA):
        moves, rep_of = _balance_moves(accounts, reps, policy, max_moves)
    capacity_moves, rep_of, within_capacity = _capacity_moves(
        accounts.assign(rep_id=rep_of), territories, capacity, policy.monitors, max_moves - len(moves))
    moves += capacity_moves
    after = assignment_balance(accounts.assign(owner_rep_id=rep_of), reps, policy.territories,
                               policy.workload_weights)
    frame = _with_loads(pd.DataFrame(moves, columns=["account_id", "tier", "from_rep_id", "to_rep_id", "step",
                                                     "reason"]),
                        accounts.assign(rep_id=current), territories, capacity, policy.monitors)
    for criterion in BALANCE_CRITERIA:
        frame[f"max_dev_{criterion}_before"] = before[criterion]
        frame[f"max_dev_{criterion}_after"] = after[criterion]
    frame.insert(0, "move_number", np.arange(1, len(frame) + 1))
    frame.insert(0, "proposal_id", proposal_id(frame))
    reaches = within_capacity and all(after[c] <= tolerance[c] for c in BALANCE_CRITERIA)
    return frame[MOVE_COLUMNS], reaches


def _balance_moves(
    accounts: pd.DataFrame, reps: pd.DataFrame, policy: Policy, max_moves: int
) -> tuple[list[dict], pd.Series]:
    """The planner's re-plan from the current owners, budgeted to `max_moves` accounts: its moves and reps."""
    share = min(policy.territories.max_moved_account_share, max_moves / max(len(accounts), 1))
    budgeted = policy.territories.model_copy(update={"max_moved_account_share": share})
    plan = plan_territories(accounts, reps, budgeted, policy.workload_weights, kmeans_baseline=False)
    ids = accounts["account_id"].astype(str)
    planned = plan.assignments.assign(tier=accounts["tier"].to_numpy()).set_index("account_id").loc[ids]
    moved = planned[planned["is_moved"].to_numpy(dtype=bool)].head(max_moves)
    moves = pd.DataFrame({
        "account_id": moved.index, "tier": moved["tier"].to_numpy(), "from_rep_id": moved["previous_rep_id"].to_numpy(),
        "to_rep_id": moved["rep_id"].to_numpy(), "step": "balance", "reason": moved["move_reason"].to_numpy(),
    })
    rep_of = accounts["owner_rep_id"].astype("string").copy()
    rep_of.iloc[pd.Index(ids).get_indexer(moved.index)] = moved["rep_id"].to_numpy()
    return moves.to_dict("records"), rep_of


def _capacity(reps: pd.Series, capacities: pd.DataFrame, policy: MonitorPolicy) -> pd.Series:
    given = capacities.set_index("rep_id")["capacity"] if len(capacities) else pd.Series(dtype=float)
    return given.reindex(reps).fillna(float(policy.default_a_tier_capacity))


def _a_loads(assignments: pd.DataFrame, territories: pd.DataFrame, capacity: pd.DataFrame,
             policy: MonitorPolicy) -> tuple[pd.Series, pd.Series, pd.Series]:
    """A-tier accounts per territory rep, the rep's capacity, and the load above which the monitor alerts."""
    reps = territories["rep_id"].dropna().sort_values(ignore_index=True)
    cap = _capacity(reps, capacity, policy)
    limit = np.floor(cap * policy.coverage_alert + 1e-9)
    load = assignments[assignments["tier"] == "A"].groupby("rep_id").size().reindex(reps, fill_value=0)
    return load.astype(float), cap, limit


def _capacity_moves(
    assignments: pd.DataFrame, territories: pd.DataFrame, capacity: pd.DataFrame, policy: MonitorPolicy,
    max_moves: int,
) -> tuple[list[dict], pd.Series, bool]:
    """Moves of A-tier accounts from reps above the alert load to the reps with most room; the new reps."""
    load, _, limit = _a_loads(assignments, territories, capacity, policy)
    a_tier = assignments[assignments["tier"] == "A"]
    candidates = {rep: list(group.sort_values(["potential", "account_id"])["account_id"])
                  for rep, group in a_tier.groupby("rep_id")}
    moves = []
    while (load > limit).any() and len(moves) < max_moves:
        source = (load - limit).idxmax()
        room = limit - load
        if room.max() < 1:
            break
        target = room[room == room.max()].index.min()
        moves.append({
            "account_id": candidates[source].pop(0), "tier": "A", "from_rep_id": source, "to_rep_id": target,
            "step": "capacity",
            "reason": (f"{source} holds {load[source]:.0f} A-tier accounts for a limit of {limit[source]:.0f}; "
                       f"{target} has room for {room[target]:.0f} more"),
        })
        load[source] -= 1
        load[target] += 1
    rep_of = assignments["rep_id"].astype("string").copy()
    if moves:
        position = pd.Index(assignments["account_id"].astype(str)).get_indexer([m["account_id"] for m in moves])
        rep_of.iloc[position] = [m["to_rep_id"] for m in moves]
    return moves, rep_of, bool((load <= limit).all())


def _with_loads(moves: pd.DataFrame, assignments: pd.DataFrame, territories: pd.DataFrame, capacity: pd.DataFrame,
                policy: MonitorPolicy) -> pd.DataFrame:
    """Each move with its territory, and the A-tier loads and the highest utilisation before and after it,
    the moves taken in order from the current assignment."""
    load, cap, _ = _a_loads(assignments, territories, capacity, policy)
    territory_of = territories.set_index("rep_id")["territory_id"]
    is_a = (moves["tier"] == "A").to_numpy(dtype=float)
    # A-tier load of every rep after each move: the current load plus the running sum of arrivals and departures.
    change = np.zeros((len(moves), len(load)))
    reps = pd.Index(load.index)
    change[np.arange(len(moves)), reps.get_indexer(moves["from_rep_id"])] -= is_a
    change[np.arange(len(moves)), reps.get_indexer(moves["to_rep_id"])] += is_a
    after = load.to_numpy()[None, :] + np.cumsum(change, axis=0)
    before = np.vstack([load.to_numpy()[None, :], after[:-1]]) if len(moves) else after
    rows = np.arange(len(moves))
    source, target = reps.get_indexer(moves["from_rep_id"]), reps.get_indexer(moves["to_rep_id"])
    return moves.assign(
        to_territory_id=territory_of.reindex(moves["to_rep_id"]).to_numpy(),
        from_a_load_before=before[rows, source], from_a_load_after=after[rows, source],
        to_a_load_before=before[rows, target], to_a_load_after=after[rows, target],
        max_utilization_before=(before / cap.to_numpy()[None, :]).max(axis=1) if len(moves) else [],
        max_utilization_after=(after / cap.to_numpy()[None, :]).max(axis=1) if len(moves) else [],
    )


def proposal_id(moves: pd.DataFrame) -> str:
    """The same moves always get the same id, so a re-run proposes (not duplicates) the same thing."""
    text = "\n".join(f"{a}:{f}->{t}" for a, f, t in moves[["account_id", "from_rep_id", "to_rep_id"]].itertuples(
        index=False))
    return "rb-" + hashlib.sha1(text.encode()).hexdigest()[:10]


def apply_moves(assignments: pd.DataFrame, moves: pd.DataFrame) -> pd.DataFrame:
    """The assignments with each moved account under its new rep and territory, marked as moved."""
    out = assignments.copy()
    index = out.set_index("account_id").index
    pos = index.get_indexer(moves["account_id"])
    if (pos < 0).any():
        missing = moves.loc[pos < 0, "account_id"].tolist()[:5]
        raise ValueError(f"the proposal moves accounts no longer in the plan ({missing}); propose again")
    out.loc[out.index[pos], "previous_rep_id"] = out.loc[out.index[pos], "rep_id"].to_numpy()
    out.loc[out.index[pos], "rep_id"] = moves["to_rep_id"].to_numpy()
    out.loc[out.index[pos], "territory_id"] = moves["to_territory_id"].to_numpy()
    out.loc[out.index[pos], "is_moved"] = True
    if "move_reason" in out:
        out.loc[out.index[pos], "move_reason"] = moves["reason"].to_numpy()
    return out
