"""Routing new leads: score them with the champion model, find their territory, and name exactly one owner.

Pure pandas/numpy. A lead file has the accounts columns of the input contract; its fit features are
derived here the way ``int_accounts_fit_derived.sql`` derives them for accounts, so the champion model sees
the same inputs it was trained on. A new lead has no engagement or contacts yet: its counts are zero, as
dbt makes them for an account without events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from ml.contract import ACCOUNTS
from ml.policy import RoutingPolicy
from ml.scoring import ChampionModel, score_new_rows

EARTH_RADIUS_KM = 6371.0088
ROUTING_COLUMNS = [
    "lead_id", "account_id", "territory_id", "rep_id", "owner_role", "tier", "conversion_probability",
    "sla_hours", "sla_due_at", "reason", "routed_at", "run_id", "source", "model_version",
]
# Employees bands of int_accounts_fit_derived.sql: (upper bound, label); the last band is open.
SIZE_BANDS = [(10, "1-9"), (50, "10-49"), (250, "50-249"), (1000, "250-999"), (5000, "1000-4999")]


def save_champion(model: ChampionModel, path: Path) -> Path:
    """Write the model beside the warehouse, swapped in one rename so a router never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".tmp")
    joblib.dump(model, staging)
    staging.replace(path)
    return path


def load_champion(path: Path) -> ChampionModel:
    if not path.exists():
        raise FileNotFoundError(f"champion model {path} does not exist: run `territory run` first to train it")
    return joblib.load(path)


def read_leads(path: Path) -> pd.DataFrame:
    """A CSV or JSON-lines lead file as text columns, names matched like the input contract."""
    if not path.exists():
        raise FileNotFoundError(f"lead file {path} does not exist")
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        frame = pd.DataFrame(rows)
    else:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.columns = [_normalise_name(c) for c in frame.columns]
    if "account_id" not in frame.columns:
        raise ValueError(f"lead file {path} has no account_id column (columns: {list(frame.columns)})")
    frame = frame.astype("string").apply(lambda c: c.str.strip()).replace("", pd.NA)
    missing_id = frame["account_id"].isna()
    if missing_id.any():
        rows = (np.flatnonzero(missing_id) + 1).tolist()[:10]
        raise ValueError(f"lead file {path}: empty account_id on data rows {rows}; give every lead an id")
    return frame


def sample_leads(accounts: pd.DataFrame, n: int, seed: int, blank_share: float = 0.05) -> pd.DataFrame:
    """New leads shaped like `accounts` (drawn with replacement, fresh ids `L000000`...), with `blank_share`
    of them missing coordinates and, independently, industry: the fallbacks a real lead file exercises."""
    rng = np.random.default_rng(seed)
    leads = accounts.iloc[rng.integers(0, len(accounts), n)].reset_index(drop=True)
    leads["account_id"] = [f"L{i:06d}" for i in range(n)]
    for columns in (["latitude", "longitude"], ["industry"]):
        present = [c for c in columns if c in leads.columns]
        if present:
            leads.loc[rng.random(n) < blank_share, present] = None
    return leads


def _normalise_name(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in str(name).strip().lower()).strip("_")


def lead_features(leads: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Feature rows, technologies and extra attributes of new leads, shaped like the warehouse tables."""
    def number(column: str) -> pd.Series:
        return pd.to_numeric(leads[column], errors="coerce") if column in leads else pd.Series(np.nan, leads.index)

    def text(column: str) -> pd.Series:
        return leads[column] if column in leads else pd.Series(pd.NA, index=leads.index, dtype="string")

    employees = number("employees")
    technologies = _technologies(leads)
    band = pd.Series("5000+", index=leads.index, dtype=object)
    for upper, label in reversed(SIZE_BANDS):
        band = band.mask(employees < upper, label)
    features = pd.DataFrame({
        "account_id": leads["account_id"],
        "industry": text("industry"),
        "latitude": number("latitude"),
        "longitude": number("longitude"),
        "fit_industry": text("industry").fillna("unknown"),
        "fit_size_band": band.mask(employees.isna(), "unknown"),
        "fit_region": text("state").fillna(text("country")).fillna("unknown"),
        "fit_log_employees": np.log1p(employees),
        "fit_log_annual_revenue": np.log1p(number("annual_revenue")),
        "fit_technology_count": leads["account_id"].map(technologies.groupby("account_id").size()).fillna(0),
        "fit_has_parent": text("parent_account_id").notna().astype(int),
        # A new lead has no child accounts in the CRM yet.
        "fit_child_count": 0,
    })
    known = set(ACCOUNTS.columns)
    extra = [c for c in leads.columns if c not in known]
    attributes = leads.melt(id_vars="account_id", value_vars=extra, var_name="attribute").dropna(subset="value")
    return features, technologies, attributes


def _technologies(leads: pd.DataFrame) -> pd.DataFrame:
    if "technologies" not in leads:
        return pd.DataFrame({"account_id": pd.Series([], dtype="string"), "technology": pd.Series([], dtype="string")})
    split = leads[["account_id", "technologies"]].dropna().assign(technology=lambda d: d["technologies"].str.split(";"))
    long = split.explode("technology")[["account_id", "technology"]]
    long["technology"] = long["technology"].str.strip()
    return long[long["technology"].fillna("") != ""].drop_duplicates(ignore_index=True)


def no_history_features(model: ChampionModel, features: pd.DataFrame) -> pd.DataFrame:
    """Engagement and persona counts of a lead that has none yet: zero, except 'days since' (unknown)."""
    columns = {e.source.name for fit in model.fits.values() for e in fit.encodings}
    added = {
        name: (np.nan if "days_since" in name else 0.0)
        for name in sorted(columns) if name.startswith(("eng_", "persona_")) and name not in features
    }
    return features.assign(**added)


@dataclass(frozen=True)
class Territories:
    """The current plan as routing needs it: territory ids, owner reps, centres and industries."""

    ids: np.ndarray
    reps: np.ndarray
    xyz: np.ndarray
    has_centre: np.ndarray
    basis: str
    # industry -> territory index holding most of that industry's accounts
    industry_home: dict[str, int]
    # territory index with the lowest workload per unit of capacity: the fallback owner
    fallback: int


def territories_for_routing(territories: pd.DataFrame, assignments: pd.DataFrame,
                            features: pd.DataFrame) -> Territories:
    """Centres, owners and each industry's home territory from the plan tables."""
    owned = territories[territories["rep_id"].notna()].sort_values("territory_id", ignore_index=True)
    if owned.empty:
        raise ValueError("the territory plan has no territory with an owner rep; run `territory run` first")
    lat = pd.to_numeric(owned["center_latitude"], errors="coerce").to_numpy(float)
    lon = pd.to_numeric(owned["center_longitude"], errors="coerce").to_numpy(float)
    has_centre = ~(np.isnan(lat) | np.isnan(lon))
    index = pd.Index(owned["territory_id"])
    industry = assignments.merge(features[["account_id", "industry"]], on="account_id").dropna(subset="industry")
    industry = industry[index.get_indexer(industry["territory_id"]) >= 0]
    # Most accounts of the industry; ties go to the smaller territory id so the answer never flips.
    counts = industry.groupby(["industry", "territory_id"]).size().rename("n").reset_index()
    counts = counts.sort_values(["industry", "n", "territory_id"], ascending=[True, False, True])
    home = counts.drop_duplicates("industry")
    load = owned["workload"].astype(float) / owned["capacity_accounts"].astype(float).where(
        owned["capacity_accounts"].astype(float) > 0)
    return Territories(
        ids=owned["territory_id"].to_numpy(),
        reps=owned["rep_id"].to_numpy(),
        xyz=_to_xyz(lat, lon),
        has_centre=has_centre,
        basis=str(owned["basis"].iloc[0]),
        industry_home={str(i): int(index.get_loc(t)) for i, t in zip(home["industry"], home["territory_id"])},
        fallback=int(np.argmin(load.fillna(owned["workload"].astype(float)).to_numpy())),
    )


def _to_xyz(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    phi, lam = np.radians(np.nan_to_num(lat)), np.radians(np.nan_to_num(lon))
    return np.column_stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)])


def find_territories(
    features: pd.DataFrame, plan: Territories, policy: RoutingPolicy
) -> tuple[np.ndarray, np.ndarray]:
    """Territory index and reason per lead: the plan's own rule, then the policy's fallbacks in order.

    The policy's chain always ends with the least-loaded territory, so every lead gets exactly one.
    """
    lat = features["latitude"].to_numpy(float)
    lon = features["longitude"].to_numpy(float)
    has_geo = ~(np.isnan(lat) | np.isnan(lon)) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
    industry = features["industry"].astype(object).where(features["industry"].notna(), None).to_numpy()
    home = np.array([plan.industry_home.get(str(i), -1) if i is not None else -1 for i in industry], dtype=int)
    territory = np.full(len(features), -1)
    reason = np.full(len(features), "", dtype=object)
    centres = np.flatnonzero(plan.has_centre)

    def nearest(rows: np.ndarray, prefix: str) -> None:
        rows = rows & has_geo
        if not rows.any() or centres.size == 0:
            return
        km = EARTH_RADIUS_KM * np.arccos(np.clip(_to_xyz(lat[rows], lon[rows]) @ plan.xyz[centres].T, -1, 1))
        closest = km.min(axis=1, keepdims=True)
        # Centres within the tie distance are equally near: the first (lowest territory id) wins, every time.
        pick = np.argmax(km <= closest + policy.tie_km, axis=1)
        territory[rows] = centres[pick]
        reason[rows] = [f"{prefix}nearest territory centre, {d:.0f} km" for d in closest[:, 0]]

    def vertical(rows: np.ndarray, prefix: str) -> None:
        rows = rows & (home >= 0)
        territory[rows] = home[rows]
        reason[rows] = [f"{prefix}vertical: territory with most {i} accounts" for i in industry[rows]]

    def least_loaded(rows: np.ndarray, prefix: str) -> None:
        territory[rows] = plan.fallback
        reason[rows] = f"{prefix}no usable coordinates or known industry: least-loaded territory"

    rules = {"nearest": nearest, "industry": vertical, "least_loaded": least_loaded}
    rules["nearest" if plan.basis == "geo" else "industry"](territory < 0, "")
    for step in policy.fallbacks:
        rules[step](territory < 0, f"fallback ({step}): ")
    return territory, reason


def route_leads(
    leads: pd.DataFrame,
    model: ChampionModel,
    plan: Territories,
    tier_policy: pd.DataFrame,
    policy: RoutingPolicy,
    routed_at: datetime,
    run_id: str,
) -> pd.DataFrame:
    """One decision per lead: territory, owner rep, owner role, tier, SLA due time and the reason.

    Deterministic: the same leads, model and plan give the same decisions (only routed_at differs).
    A lead repeated in the file is routed once, on its last row.
    """
    leads = leads.drop_duplicates("account_id", keep="last", ignore_index=True)
    features, technologies, attributes = lead_features(leads)
    scores = score_new_rows(model, no_history_features(model, features), technologies, attributes)
    territory, reason = find_territories(features, plan, policy)
    tiers = tier_policy.set_index("tier")
    sla_hours = scores["tier"].map(tiers["sla_hours"]).astype(float).fillna(policy.default_sla_hours)
    decisions = pd.DataFrame({
        "lead_id": leads["account_id"].to_numpy(),
        "account_id": leads["account_id"].to_numpy(),
        "territory_id": plan.ids[territory],
        "rep_id": plan.reps[territory],
        "owner_role": scores["tier"].map(tiers["owner_role"]).fillna(policy.default_owner_role).to_numpy(),
        "tier": scores["tier"].to_numpy(),
        "conversion_probability": scores["conversion_probability"].to_numpy(),
        "sla_hours": sla_hours.to_numpy(),
        "sla_due_at": pd.Timestamp(routed_at) + pd.to_timedelta(sla_hours.to_numpy(), unit="h"),
        "reason": [f"tier {t} (p={p:.3f}); {r}" for t, p, r in zip(
            scores["tier"], scores["conversion_probability"], reason)],
        "routed_at": pd.Timestamp(routed_at),
        "run_id": run_id,
        "source": "route",
        "model_version": model.model_version,
    })
    return decisions[ROUTING_COLUMNS]


def pair_sdrs(territories: pd.DataFrame, reps: pd.DataFrame, sdr_role: str = "SDR") -> pd.DataFrame:
    """The SDR who covers each territory: (territory_id, sdr_rep_id), null when the team has no SDRs.

    SDRs cover territories in equal shares (each SDR at most ceil(territories / SDRs)); with coordinates on
    both sides the pairing minimises the total distance from SDR homes to territory centres, otherwise SDRs
    take territories in turn, so the answer is stable from run to run.
    """
    sdrs = reps[reps["role"].astype("string").str.upper() == sdr_role.upper()].sort_values("rep_id")
    out = territories[["territory_id"]].sort_values("territory_id").reset_index(drop=True)
    if sdrs.empty or out.empty:
        return out.assign(sdr_rep_id=pd.Series([None] * len(out), dtype="object"))
    sdr_ids = sdrs["rep_id"].to_numpy(dtype=object)
    centres = territories.set_index("territory_id").reindex(out["territory_id"])
    homes = pd.DataFrame(sdrs, columns=["latitude", "longitude"]).to_numpy(dtype=float)
    points = pd.DataFrame(centres, columns=["center_latitude", "center_longitude"]).to_numpy(dtype=float)
    if not (np.isfinite(homes).all() and np.isfinite(points).all()):
        return out.assign(sdr_rep_id=sdr_ids[np.arange(len(out)) % len(sdr_ids)])
    slots = -(-len(out) // len(sdr_ids))
    cost = _haversine_km(points[:, None, :], np.repeat(homes, slots, axis=0)[None, :, :])
    rows, cols = linear_sum_assignment(cost)
    paired = np.empty(len(out), dtype=object)
    paired[rows] = np.repeat(sdr_ids, slots)[cols]
    return out.assign(sdr_rep_id=paired)


def _haversine_km(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lat1, lon1 = np.radians(a[..., 0]), np.radians(a[..., 1])
    lat2, lon2 = np.radians(b[..., 0]), np.radians(b[..., 1])
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(h))
