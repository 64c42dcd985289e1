"""Tests for ml.sla: planted SLA breaches are found, and only they."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.sla import breaches, first_touches, sla_compliance

T0 = pd.Timestamp("2025-03-01 09:00")


def planted(n: int = 300, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame, set[str], set[str]]:
    """Assignments with touches inside their SLA, except a planted set touched late or never."""
    rng = np.random.default_rng(seed)
    ids = [f"A{i:04d}" for i in range(n)]
    tier = rng.choice(["A", "B", "C"], n)
    sla = pd.Series(tier).map({"A": 4, "B": 24, "C": 72}).to_numpy()
    assigned = T0 + pd.to_timedelta(rng.integers(0, 30 * 24, n), unit="h")
    late = set(rng.choice(ids, 25, replace=False))
    never = set(rng.choice(sorted(set(ids) - late), 10, replace=False))
    rows = []
    for i, account in enumerate(ids):
        if account in never:
            continue
        hours = sla[i] * (1.5 + rng.random()) if account in late else sla[i] * rng.random()
        rows.append((account, assigned[i] + pd.to_timedelta(hours, unit="h")))
        # A touch before the assignment must not count as the first touch after it.
        rows.append((account, assigned[i] - pd.Timedelta(hours=1)))
    activities = pd.DataFrame(rows, columns=["account_id", "occurred_at"])
    assignments = pd.DataFrame({"account_id": ids, "rep_id": rng.choice(["R1", "R2"], n), "tier": tier,
                                "sla_hours": sla, "assigned_at": assigned})
    return assignments, activities, late, never


def test_planted_breaches_are_found_exactly() -> None:
    assignments, activities, late, never = planted()
    touches = first_touches(assignments, activities, as_of=T0 + pd.Timedelta(days=60))
    found = set(breaches(touches)["account_id"])
    assert found == late | never
    assert set(touches.loc[touches["sla_status"] == "met", "account_id"]) == set(assignments["account_id"]) - found


def test_untouched_before_due_is_pending_and_old_assignments_are_not_judged() -> None:
    assignments = pd.DataFrame({"account_id": ["new", "old"], "rep_id": "R1", "tier": "A", "sla_hours": 4.0,
                                "assigned_at": [T0, T0 - pd.Timedelta(days=400)]})
    activities = pd.DataFrame({"account_id": ["x"], "occurred_at": [T0 - pd.Timedelta(days=10)]})
    touches = first_touches(assignments, activities, as_of=T0 + pd.Timedelta(hours=2)).set_index("account_id")
    assert touches.loc["new", "sla_status"] == "pending"
    assert touches.loc["old", "sla_status"] == "not_judged"


def test_compliance_median_and_p90_per_rep_and_tier() -> None:
    assignments = pd.DataFrame({"account_id": list("abcd"), "rep_id": "R1", "tier": "B", "sla_hours": 24.0,
                                "assigned_at": T0})
    activities = pd.DataFrame({"account_id": list("abcd"),
                               "occurred_at": T0 + pd.to_timedelta([1, 2, 10, 30], unit="h")})
    touches = first_touches(assignments, activities, as_of=T0 + pd.Timedelta(days=5))
    row = sla_compliance(touches, compliance_alert=0.8, run_id="r").iloc[0]
    assert (row["met"], row["breached"], row["judged"]) == (3, 1, 4)
    assert row["compliance"] == 0.75 and row["status"] == "alert"
    assert row["median_hours_to_first_touch"] == 6.0
    assert abs(row["p90_hours_to_first_touch"] - 24.0) < 1e-9
