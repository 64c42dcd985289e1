"""Typed policy: every threshold and cut-off the pipeline uses, loaded from one YAML file."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, field_validator

DEFAULT_POLICY_PATH = Path(__file__).resolve().parent.parent / "config" / "policy.yml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScoringPolicy(_Strict):
    as_of_date: date | None = None
    random_seed: int = 42
    test_share: float = Field(0.2, gt=0, lt=0.5)
    min_closed_outcomes: int = 200
    min_won_outcomes: int = 40
    min_distinct_accounts: int = 200
    # The combiner's C; each layer's C is chosen from the grid by cross-validated log loss.
    regularization_c: float = 1.0
    regularization_grid: list[float] = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]
    # Penalties each layer's logistic regression is tried with (the grid's every C for each).
    penalties: list[Literal["l2", "l1"]] = ["l2", "l1"]
    cv_folds: int = Field(5, ge=2)
    # Folds of the cross-validation that chooses each layer's model (penalty, C, boosting or not).
    choice_folds: int = Field(3, ge=2)
    # Out-of-time windows of the rolling-origin back-test (dated outcomes), each as large as the test split.
    back_test_windows: int = Field(3, ge=1)
    # Held-out predictions are pooled over further refits only while the held-out rows are fewer than this.
    pooled_enough_rows: int = Field(10_000, ge=1)
    # Calibration follows a drifting base rate: training outcomes weigh 2^(-days before the latest / half-life),
    # the half-life being the candidate that best predicts the latest training outcomes, and the weighted gap
    # must exceed recalibration_min_z standard errors before the probabilities are shifted.
    calibration_half_lives_days: list[PositiveFloat] = Field([15, 30, 60, 120, 240], min_length=1)
    recalibration_min_z: float = Field(2.0, ge=0)
    # Relative log-loss gain boosting needs over logistic regression, and Brier gain isotonic needs over sigmoid.
    model_choice_min_gain: float = Field(0.01, ge=0)
    calibration_choice_min_gain: float = Field(0.01, ge=0)
    # A feature that alone separates won from lost this well (AUC) was filled in after the outcome.
    max_single_feature_auc: float = Field(0.95, gt=0.5, le=1)
    # Below the minimum outcomes and without a champion: logit weight per standard deviation of a feature.
    prior_weights: dict[str, float] = {}
    min_category_rows: int = 20
    max_categories_per_feature: int = 30
    # Placeholder values of extra account columns that mean "not filled in" (compared case-insensitively).
    missing_value_tokens: list[str] = ["select", "n/a", "null", "nan", "-", "?", "not specified"]
    ece_bins: int = 10
    # The run summary reports the test split's base rate beside train's when their ratio is off 1 by this much.
    base_rate_shift_note: float = Field(0.25, gt=0)
    engagement_half_life_days: float = 30
    deal_value_cap_quantile: float = Field(0.95, gt=0, le=1)
    # Extra account columns never learned from (compared case-insensitively). acquisition_cost is spent
    # because a deal was won: it feeds the CAC payback KPI, and as a feature it would restate the outcome.
    exclude_attributes: list[str] = ["acquisition_cost"]


class TierPolicy(_Strict):
    a_min_priority: float = Field(85, ge=0, le=100)
    b_min_priority: float = Field(50, ge=0, le=100)
    # An A account needs at least this conversion probability, whatever its rank.
    a_min_probability: float = Field(0.0, ge=0, le=1)


BALANCE_CRITERIA = ("potential", "workload", "a_count", "account_count")


class TerritoryScenario(_Strict):
    """A what-if variant of the territory policy, planned beside the live plan."""

    name: str
    add_reps: int = Field(0, ge=0)
    remove_reps: list[str] = []
    tolerance: float | None = Field(None, gt=0, lt=1)
    basis: str | None = Field(None, pattern="^(auto|geo|vertical)$")
    # Plan from scratch, ignoring current owners' disruption budget; null = only when the basis changes
    # (a switch from geographic to vertical territories cannot be reached by a few moves).
    fresh: bool | None = None


class TerritoryPolicy(_Strict):
    basis: str = Field("auto", pattern="^(auto|geo|vertical)$")
    min_geo_share: float = 0.8
    tolerance: float = Field(0.05, gt=0, lt=1)
    tolerances: dict[str, float] = {}
    owner_roles: list[str] = ["AE"]
    default_capacity_accounts: int | None = None
    random_seed: int = 7
    # False: a run after the first keeps every account with its current rep and places only new accounts;
    # moves come from rebalance proposals a person applies. True: every run re-plans within the budget.
    replan_existing: bool = False
    max_moved_account_share: float = Field(0.05, ge=0, le=1)
    max_moved_potential_share: float = Field(0.05, ge=0, le=1)
    late_stages: list[str] = ["proposal", "negotiation", "commit", "contract"]
    locks: dict[str, str] = {}
    ramp_curve: list[float] = []
    plan_date: date | None = None
    scenarios: list[TerritoryScenario] = []

    @field_validator("tolerances")
    @classmethod
    def _known_criteria(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(BALANCE_CRITERIA))
        if unknown:
            raise ValueError(f"tolerances name unknown criteria {unknown}; known: {list(BALANCE_CRITERIA)}")
        if any(not 0 < v < 1 for v in value.values()):
            raise ValueError("every tolerance must be between 0 and 1")
        return value

    @field_validator("ramp_curve")
    @classmethod
    def _shares(cls, value: list[float]) -> list[float]:
        if any(not 0 < v <= 1 for v in value):
            raise ValueError("ramp_curve holds shares of full capacity per month, each in (0, 1]")
        return value

    def tolerance_of(self, criterion: str) -> float:
        return self.tolerances.get(criterion, self.tolerance)


class MonitorPolicy(_Strict):
    psi_watch: float = 0.10
    psi_alert: float = 0.25
    psi_bins: int = 10
    coverage_watch: float = 0.9
    coverage_alert: float = 1.0
    default_a_tier_capacity: int = 50


class RoutingPolicy(_Strict):
    # After the plan's own rule (nearest centre for geo plans, industry for vertical ones), in this order.
    fallbacks: list[Literal["nearest", "industry", "least_loaded"]] = ["industry", "nearest", "least_loaded"]
    # Territory centres closer than this to a lead's nearest one count as a tie; the lower id wins.
    tie_km: float = Field(1.0, ge=0)
    # For a tier the tier_policy seed does not list.
    default_owner_role: str = "AE"
    default_sla_hours: float = Field(24, gt=0)

    @field_validator("fallbacks")
    @classmethod
    def _ends_with_an_owner(cls, value: list[str]) -> list[str]:
        if not value or value[-1] != "least_loaded":
            raise ValueError("routing.fallbacks must end with least_loaded, so every lead gets exactly one owner")
        return value


class OperationsPolicy(_Strict):
    # A scoring model older than these many days is stale: watch (WARN check), then alert (ERROR check).
    model_stale_watch_days: float = Field(35, gt=0)
    model_stale_alert_days: float = Field(100, gt=0)
    # SLA compliance below this share is an alert in monitor_sla.
    sla_compliance_alert: float = Field(0.8, ge=0, le=1)
    # A rebalance proposal never moves more accounts than this; the rest is left to a full replan.
    rebalance_max_moves: int = Field(500, gt=0)
    # The KPI marts count activities, meetings, created and closed opportunities over these many days up to
    # the as-of date (90 matches the persona feature's window).
    kpi_window_days: int = Field(90, gt=0)


class Policy(_Strict):
    scoring: ScoringPolicy = ScoringPolicy()
    tiers: TierPolicy = TierPolicy()
    workload_weights: dict[str, float] = {"A": 3.0, "B": 2.0, "C": 1.0}
    territories: TerritoryPolicy = TerritoryPolicy()
    monitors: MonitorPolicy = MonitorPolicy()
    routing: RoutingPolicy = RoutingPolicy()
    operations: OperationsPolicy = OperationsPolicy()


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
