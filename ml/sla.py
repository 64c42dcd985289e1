"""Speed to lead: the first touch after each assignment against the tier's SLA, and compliance per rep and tier.

Pure pandas/numpy; the `monitor_sla` asset reads the tables and writes `monitor_sla` and `sla_breaches`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TOUCH_COLUMNS = [
    "account_id", "rep_id", "tier", "sla_hours", "assigned_at", "sla_due_at", "first_touch_at",
    "hours_to_first_touch", "sla_status",
]
SLA_COLUMNS = [
    "run_id", "rep_id", "tier", "assignments", "judged", "met", "breached", "pending", "compliance",
    "median_hours_to_first_touch", "p90_hours_to_first_touch", "status",
]


def first_touches(assignments: pd.DataFrame, activities: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """One row per assignment: when it was first touched and whether that met its SLA.

    ``assignments`` has account_id, rep_id, tier, sla_hours, assigned_at; ``activities`` has account_id
    and occurred_at. The first touch is the account's earliest activity at or after the assignment, by
    anyone (a teammate's call reaches the lead as well). Status: ``met`` (touched by the due time),
    ``breached`` (touched late, or untouched once ``as_of`` passed the due time), ``pending`` (untouched,
    not yet due) or ``not_judged`` (due before the activity history starts, so nobody can tell).
    """
    frame = assignments[["account_id", "rep_id", "tier", "sla_hours", "assigned_at"]].copy()
    # Exports type ids differently (text, numbers); the touch lookup needs one key type on both sides.
    frame["account_id"] = frame["account_id"].astype(str)
    # One resolution on both sides: merge_asof refuses to compare microseconds with nanoseconds.
    frame["assigned_at"] = pd.to_datetime(frame["assigned_at"]).astype("datetime64[us]")
    frame["sla_due_at"] = frame["assigned_at"] + pd.to_timedelta(frame["sla_hours"].astype(float), unit="h")
    touches = activities[["account_id", "occurred_at"]].dropna().copy()
    touches["account_id"] = touches["account_id"].astype(str)
    touches["occurred_at"] = pd.to_datetime(touches["occurred_at"]).astype("datetime64[us]")
    history_start = touches["occurred_at"].min() if len(touches) else pd.NaT

    ordered = frame.reset_index(names="row").dropna(subset="assigned_at").sort_values("assigned_at")
    touches = touches.sort_values("occurred_at")
    # The next touch of the same account at or after the assignment time.
    found = pd.merge_asof(ordered, touches.rename(columns={"occurred_at": "first_touch_at"}),
                          left_on="assigned_at", right_on="first_touch_at", by="account_id", direction="forward")
    frame["first_touch_at"] = found.set_index("row")["first_touch_at"].reindex(frame.index)

    hours = (frame["first_touch_at"] - frame["assigned_at"]).dt.total_seconds() / 3600.0
    frame["hours_to_first_touch"] = hours
    touched = frame["first_touch_at"].notna()
    late = (touched & (frame["first_touch_at"] > frame["sla_due_at"])) | (~touched & (frame["sla_due_at"] < as_of))
    status = np.select(
        [frame["assigned_at"].isna() | ~(frame["sla_due_at"] >= history_start), late, touched],
        ["not_judged", "breached", "met"], default="pending",
    )
    frame["sla_status"] = status
    return frame[TOUCH_COLUMNS]


def sla_compliance(touches: pd.DataFrame, compliance_alert: float, run_id: str) -> pd.DataFrame:
    """Per rep and tier: counts by status, compliance (met / judged) and hours to first touch."""
    judged = touches[touches["sla_status"].isin(["met", "breached"])]
    keys = ["rep_id", "tier"]
    counts = touches.groupby(keys)["sla_status"].value_counts().unstack(fill_value=0)
    counts = counts.reindex(columns=["met", "breached", "pending"], fill_value=0)
    out = pd.DataFrame({
        "assignments": touches.groupby(keys).size(),
        "judged": judged.groupby(keys).size(),
        "met": counts["met"],
        "breached": counts["breached"],
        "pending": counts["pending"],
    }).fillna(0).astype("int64")
    out["compliance"] = (out["met"] / out["judged"].where(out["judged"] > 0)).astype(float)
    hours = touches.dropna(subset="hours_to_first_touch").groupby(keys)["hours_to_first_touch"]
    out["median_hours_to_first_touch"] = hours.median()
    out["p90_hours_to_first_touch"] = hours.quantile(0.9)
    out["status"] = np.where(out["compliance"].isna(), "no_data",
                             np.where(out["compliance"] < compliance_alert, "alert", "ok"))
    out["run_id"] = run_id
    return out.reset_index()[SLA_COLUMNS]


def breaches(touches: pd.DataFrame) -> pd.DataFrame:
    """The breached assignments with how many hours late each first touch came (NaN when untouched)."""
    late = touches[touches["sla_status"] == "breached"].copy()
    late["hours_late"] = (late["hours_to_first_touch"] - late["sla_hours"].astype(float))
    return late.sort_values(["rep_id", "sla_due_at", "account_id"], ignore_index=True)
