"""Typed policy: every threshold and cut-off the pipeline uses, loaded from one YAML file."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_POLICY_PATH = Path(__file__).resolve().parent.parent / "config" / "policy.yml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScoringPolicy(_Strict):
    as_of_date: date | None = None
    random_seed: int = 42
    calibration_share: float = Field(0.2, gt=0, lt=0.5)
    test_share: float = Field(0.2, gt=0, lt=0.5)
    min_closed_outcomes: int = 200
    min_won_outcomes: int = 40
    min_distinct_accounts: int = 200
    regularization_c: float = 1.0
    low_confidence_regularization_c: float = 0.1
    min_category_rows: int = 20
    max_categories_per_feature: int = 30
    ece_bins: int = 10
    engagement_half_life_days: float = 30
    deal_value_cap_quantile: float = Field(0.95, gt=0, le=1)


class TierPolicy(_Strict):
    a_min_priority: float = Field(85, ge=0, le=100)
    b_min_priority: float = Field(50, ge=0, le=100)


class TerritoryPolicy(_Strict):
    basis: str = Field("auto", pattern="^(auto|geo|vertical)$")
    min_geo_share: float = 0.8
    tolerance: float = Field(0.10, gt=0, lt=1)
    owner_roles: list[str] = ["AE"]
    default_capacity_accounts: int | None = None
    random_seed: int = 7


class MonitorPolicy(_Strict):
    psi_watch: float = 0.10
    psi_alert: float = 0.25
    psi_bins: int = 10
    coverage_watch: float = 0.9
    coverage_alert: float = 1.0
    default_a_tier_capacity: int = 50


class Policy(_Strict):
    scoring: ScoringPolicy = ScoringPolicy()
    tiers: TierPolicy = TierPolicy()
    workload_weights: dict[str, float] = {"A": 3.0, "B": 2.0, "C": 1.0}
    territories: TerritoryPolicy = TerritoryPolicy()
    monitors: MonitorPolicy = MonitorPolicy()


def load_policy(path: str | Path | None = None) -> Policy:
    """Read a policy file; missing keys take the defaults, unknown keys are an error."""
    source = Path(path) if path else DEFAULT_POLICY_PATH
    if not source.exists():
        raise FileNotFoundError(f"policy file {source} does not exist; pass an existing --config file")
    raw = yaml.safe_load(source.read_text()) or {}
    try:
        return Policy.model_validate(raw)
    except ValueError as exc:
        raise ValueError(f"policy file {source} is invalid: {exc}") from exc
