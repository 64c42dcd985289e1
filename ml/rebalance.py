"""Rebalance proposals: the fewest account moves that bring every rep's A-tier load back within capacity.

Pure pandas/numpy. A proposal is a list of moves, each with its reason and the balance before and after;
nothing changes until a person applies it (``apply_moves``).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from ml.policy import MonitorPolicy

MOVE_COLUMNS = [
    "proposal_id", "move_number", "account_id", "tier", "from_rep_id", "to_rep_id", "to_territory_id", "reason",
    "from_a_load_before", "from_a_load_after", "to_a_load_before", "to_a_load_after", "max_utilization_before",
    "max_utilization_after",
]


def _capacity(reps: pd.Series, capacities: pd.DataFrame, policy: MonitorPolicy) -> pd.Series:
    given = capacities.set_index("rep_id")["capacity"] if len(capacities) else pd.Series(dtype=float)
    return given.reindex(reps).fillna(float(policy.default_a_tier_capacity))


def propose_moves(
    assignments: pd.DataFrame, territories: pd.DataFrame, capacity: pd.DataFrame, policy: MonitorPolicy,
    max_moves: int,
) -> tuple[pd.DataFrame, bool]:
    """Moves of A-tier accounts from reps above ``coverage_alert`` x capacity to reps with room.

    Each move takes the most over-loaded rep's lowest-potential A-tier account (the one that disturbs
    potential balance least) to the rep with the most spare A-tier room, ties to the lower rep id. Every
    move removes one account of overload, so the count equals the total overload: no set of moves does it
    with fewer.
    Returns the moves and whether they reach tolerance (False when total capacity is short or the
    ``max_moves`` limit stops it).
    """
    reps = territories["rep_id"].dropna().sort_values(ignore_index=True)
    cap = _capacity(reps, capacity, policy)
    limit = np.floor(cap * policy.coverage_alert + 1e-9)
    a_tier = assignments[assignments["tier"] == "A"]
    load = a_tier.groupby("rep_id").size().reindex(reps, fill_value=0).astype(float)
    territory_of = territories.set_index("rep_id")["territory_id"]
    candidates = {
        rep: list(group.sort_values(["potential", "account_id"])["account_id"])
        for rep, group in a_tier.groupby("rep_id")
    }
    tiers = assignments.set_index("account_id")["tier"]
    moves = []
    while (load > limit).any() and len(moves) < max_moves:
        source = (load - limit).idxmax()
        room = limit - load
        if room.max() < 1:
            break
        target = room[room == room.max()].index.min()
        account = candidates[source].pop(0)
        before = (load / cap).max()
        from_before, to_before = load[source], load[target]
        load[source] -= 1
        load[target] += 1
        moves.append({
            "account_id": account, "tier": tiers[account], "from_rep_id": source, "to_rep_id": target,
            "to_territory_id": territory_of[target],
            "reason": (f"{source} holds {from_before:.0f} A-tier accounts for a limit of {limit[source]:.0f}; "
                       f"{target} has room for {room[target]:.0f} more"),
            "from_a_load_before": from_before, "from_a_load_after": load[source],
            "to_a_load_before": to_before, "to_a_load_after": load[target],
            "max_utilization_before": before, "max_utilization_after": (load / cap).max(),
        })
    frame = pd.DataFrame(moves, columns=[c for c in MOVE_COLUMNS if c not in ("proposal_id", "move_number")])
    frame.insert(0, "move_number", np.arange(1, len(frame) + 1))
    frame.insert(0, "proposal_id", proposal_id(frame))
    return frame[MOVE_COLUMNS], bool((load <= limit).all())


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
    return out
