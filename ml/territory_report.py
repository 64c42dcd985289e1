"""Territory pictures for stakeholders: a map of accounts coloured by territory with rep homes marked,
and balance bars per criterion against the tolerance band. PNG files, drawn with matplotlib (Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

# Files only, no window: the backend must be chosen before pyplot loads.
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ml.policy import BALANCE_CRITERIA, TerritoryPolicy

# A million dots hide each other anyway: the map draws a fixed-seed sample of this many accounts.
MAP_MAX_POINTS = 200_000
DPI = 110


def territory_map(
    accounts: pd.DataFrame, assignments: pd.DataFrame, reps: pd.DataFrame, path: str | Path, title: str
) -> Path:
    """Accounts (latitude, longitude) coloured by territory, and each owner rep's home as a black cross."""
    located = accounts[["account_id", "latitude", "longitude"]].merge(
        assignments[["account_id", "territory_id"]], on="account_id"
    )
    located = located[np.isfinite(pd.to_numeric(located["latitude"], errors="coerce"))]
    if len(located) > MAP_MAX_POINTS:
        located = located.sample(MAP_MAX_POINTS, random_state=0)
    colour = pd.factorize(located["territory_id"], sort=True)[0]
    fig, ax = plt.subplots(figsize=(10, 6.5))
    ax.scatter(
        located["longitude"].astype(float),
        located["latitude"].astype(float),
        c=colour % 20,
        cmap="tab20",
        s=4 if len(located) > 5000 else 14,
        linewidths=0,
    )
    homes = reps[reps["rep_id"].isin(assignments["rep_id"])]
    lat, lon = (pd.to_numeric(homes.get(c), errors="coerce") for c in ("latitude", "longitude"))
    ax.scatter(lon, lat, marker="X", c="black", s=60, label="rep home")
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title(title)
    if lat.notna().any():
        ax.legend(loc="lower left")
    return _save(fig, path)


def balance_bars(territories: pd.DataFrame, policy: TerritoryPolicy, path: str | Path, title: str) -> Path:
    """One panel per criterion: each territory's total relative to its target (its ramp share of the
    total), with the policy's tolerance band shaded."""
    share = territories["ramp_share"] / territories["ramp_share"].sum()
    fig, axes = plt.subplots(len(BALANCE_CRITERIA), 1, figsize=(10, 2.2 * len(BALANCE_CRITERIA)), sharex=True)
    x = np.arange(len(territories))
    for ax, criterion in zip(axes, BALANCE_CRITERIA, strict=True):
        target = territories[criterion].sum() * share
        ratio = np.where(target > 0, territories[criterion] / target.where(target > 0, 1), 1.0)
        tolerance = policy.tolerance_of(criterion)
        ax.axhspan(1 - tolerance, 1 + tolerance, color="#d9f0d3")
        outside = np.abs(ratio - 1) > tolerance
        ax.bar(x, ratio, color=np.where(outside, "#d73027", "#4575b4"))
        ax.set_ylim(min(0.8, ratio.min() - 0.02), max(1.2, ratio.max() + 0.02))
        ax.set_ylabel(f"{criterion}\n/ target")
    axes[0].set_title(title)
    axes[-1].set_xticks(x if len(x) <= 40 else x[:: len(x) // 20 + 1])
    axes[-1].set_xlabel("territory (index)")
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return out
