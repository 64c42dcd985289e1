"""Monitor math: population stability of scored features between runs, and A-tier coverage per rep.

Pure numpy/pandas; the Dagster assets that write ``monitor_score_drift`` and ``monitor_coverage`` call
these functions and own the storage.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.policy import MonitorPolicy

# Share given to a bin one side leaves empty: keeps ln(current / reference) finite while still making a
# value range or category that appears (or vanishes) weigh heavily.
EPSILON = 1e-4

DRIFT_COLUMNS = [
    "run_id", "feature", "kind", "psi", "status", "reference_run_id", "n_reference", "n_current",
]
COVERAGE_COLUMNS = ["run_id", "rep_id", "accounts", "a_tier_load", "capacity", "utilization", "status"]


def _psi_from_counts(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    ref = np.clip(reference_counts / reference_counts.sum(), EPSILON, None)
    cur = np.clip(current_counts / current_counts.sum(), EPSILON, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def psi(reference: np.ndarray, current: np.ndarray, bins: int) -> float:
    """Population stability index of a numeric sample against a reference sample.

    Bins are the reference's quantiles (``bins`` equal-count bins, open-ended at both ends so current
    values outside the reference range still land somewhere). Ties collapse duplicate edges; a constant
    reference gets the bins below, at and above its value, so a shift in either direction shows. NaN is
    a bin of its own, so a change in the share of missing values counts as drift. NaN when either sample
    is empty.
    """
    if bins < 1:
        raise ValueError(f"psi needs at least one bin, got {bins}")
    reference = np.asarray(reference, dtype=float)
    current = np.asarray(current, dtype=float)
    if reference.size == 0 or current.size == 0:
        return float("nan")

    ref_values = reference[~np.isnan(reference)]
    cur_values = current[~np.isnan(current)]
    if ref_values.size == 0:
        cuts = np.empty(0)
    elif ref_values.min() == ref_values.max():
        value = ref_values[0]
        cuts = np.array([value, np.nextafter(value, np.inf)])
    else:
        cuts = np.unique(np.quantile(ref_values, np.linspace(0, 1, bins + 1)[1:-1]))

    # side="right": a value equal to a cut belongs to the bin that starts at it.
    n_value_bins = cuts.size + 1
    ref_counts = np.bincount(np.searchsorted(cuts, ref_values, side="right"), minlength=n_value_bins)
    cur_counts = np.bincount(np.searchsorted(cuts, cur_values, side="right"), minlength=n_value_bins)
    ref_counts = np.append(ref_counts, reference.size - ref_values.size)
    cur_counts = np.append(cur_counts, current.size - cur_values.size)
    return _psi_from_counts(ref_counts, cur_counts)


def psi_categorical(reference: pd.Series | np.ndarray, current: pd.Series | np.ndarray) -> float:
    """Population stability index over the categories seen in either sample; missing is a category.

    A category only one side has gets ``EPSILON`` on the other, so new or vanished levels weigh heavily.
    NaN when either sample is empty.
    """
    ref = pd.Series(reference, dtype=object)
    cur = pd.Series(current, dtype=object)
    if ref.empty or cur.empty:
        return float("nan")
    ref_counts = ref.value_counts(dropna=False)
    cur_counts = cur.value_counts(dropna=False)
    categories = ref_counts.index.union(cur_counts.index)
    return _psi_from_counts(
        ref_counts.reindex(categories, fill_value=0).to_numpy(dtype=float),
        cur_counts.reindex(categories, fill_value=0).to_numpy(dtype=float),
    )


def psi_status(value: float, policy: MonitorPolicy) -> str:
    """ok below ``psi_watch``, watch from ``psi_watch``, alert from ``psi_alert``; no_data for NaN."""
    if np.isnan(value):
        return "no_data"
    if value >= policy.psi_alert:
        return "alert"
    if value >= policy.psi_watch:
        return "watch"
    return "ok"


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _floats(series: pd.Series) -> np.ndarray:
    # Nullable dtypes (Float64, Int64) hold pd.NA, which a float array cannot; NaN marks missing instead.
    return series.to_numpy(dtype=float, na_value=np.nan)


def score_drift(
    current: pd.DataFrame,
    reference: pd.DataFrame | None,
    columns: list[str],
    policy: MonitorPolicy,
    run_id: str,
) -> pd.DataFrame:
    """PSI per feature between this run's scores and a reference run's (one row per column).

    ``reference`` is a past run's rows (typically from ``score_history``); its ``run_id`` column, when
    there is one, becomes ``reference_run_id``. With no reference (first run), or for a column the
    reference lacks (a feature new this run), the current run is its own reference: PSI 0, status ok,
    ``reference_run_id`` = ``run_id``. Numeric columns (in both frames) use quantile-binned ``psi``
    with ``policy.psi_bins``; anything else ``psi_categorical``.
    """
    missing = [c for c in columns if c not in current.columns]
    if missing:
        raise KeyError(f"score_drift: current run lacks columns {missing}")
    previous_run_id = _single_run_id(reference) if reference is not None else None

    rows = []
    for column in columns:
        now = current[column]
        if reference is None or column not in reference.columns:
            before, reference_run_id = now, run_id
        else:
            before, reference_run_id = reference[column], previous_run_id
        if _is_numeric(now) and _is_numeric(before):
            kind = "numeric"
            value = psi(_floats(before), _floats(now), policy.psi_bins)
        else:
            kind = "categorical"
            value = psi_categorical(before, now)
        rows.append({
            "run_id": run_id,
            "feature": column,
            "kind": kind,
            "psi": value,
            "status": psi_status(value, policy),
            "reference_run_id": reference_run_id,
            "n_reference": len(before),
            "n_current": len(now),
        })
    return pd.DataFrame(rows, columns=DRIFT_COLUMNS)


def _single_run_id(reference: pd.DataFrame) -> str | None:
    """The reference's run id when it holds exactly one run; None when it carries no run id."""
    if "run_id" not in reference.columns:
        return None
    ids = reference["run_id"].dropna().unique()
    if len(ids) > 1:
        raise ValueError(f"score_drift: the reference must be a single run, got run ids {sorted(ids)[:5]}")
    return str(ids[0]) if len(ids) else None


def coverage_status(utilization: float, policy: MonitorPolicy) -> str:
    """ok below ``coverage_watch``, watch from it, alert only above ``coverage_alert`` (full is watch)."""
    if utilization > policy.coverage_alert:
        return "alert"
    if utilization >= policy.coverage_watch:
        return "watch"
    return "ok"


def coverage(
    assignments: pd.DataFrame, reps: pd.DataFrame, policy: MonitorPolicy, run_id: str
) -> pd.DataFrame:
    """A-tier load against A-tier capacity for every owner rep.

    ``assignments`` has ``account_id, rep_id, tier``; ``reps`` lists the owner reps (the caller filters
    by role) and may carry ``a_tier_capacity``. A rep's capacity is that column's value, or
    ``policy.default_a_tier_capacity`` when the column is absent or null for the rep. ``capacity_accounts``
    is deliberately not used: it bounds the whole book, not the A-tier accounts a rep can work.
    Every rep in ``reps`` gets a row (zero load when unassigned); a rep that owns accounts but is missing
    from ``reps`` still gets one, with the default capacity. Counts are of distinct accounts.
    """
    per_rep = assignments.groupby("rep_id", sort=False).agg(accounts=("account_id", "nunique"))
    a_tier = assignments[assignments["tier"].astype(object) == "A"]
    per_rep["a_tier_load"] = a_tier.groupby("rep_id", sort=False)["account_id"].nunique()

    rep_ids = pd.Index(reps["rep_id"]).union(per_rep.index)
    out = per_rep.reindex(rep_ids).fillna(0).astype({"accounts": "int64", "a_tier_load": "int64"})
    out.index.name = "rep_id"

    capacity = pd.Series(float(policy.default_a_tier_capacity), index=rep_ids)
    if "a_tier_capacity" in reps.columns:
        given = pd.to_numeric(reps.set_index("rep_id")["a_tier_capacity"], errors="coerce").dropna()
        capacity.loc[given.index] = given.to_numpy(dtype=float)
    out["capacity"] = capacity

    load = out["a_tier_load"].to_numpy(dtype=float)
    cap = out["capacity"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        # No capacity: any A-tier load is infinitely over it, none is fine.
        out["utilization"] = np.where(cap > 0, load / np.where(cap > 0, cap, 1), np.where(load > 0, np.inf, 0.0))
    out["status"] = [coverage_status(u, policy) for u in out["utilization"]]
    out["run_id"] = run_id
    return out.reset_index()[COVERAGE_COLUMNS].sort_values("rep_id", ignore_index=True)
