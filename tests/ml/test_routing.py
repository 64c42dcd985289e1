"""Tests for ml.routing: lead files, the plan's rule and every fallback give exactly one territory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ml.policy import RoutingPolicy
from ml.routing import find_territories, lead_features, read_leads, territories_for_routing

TERRITORIES = pd.DataFrame({
    "territory_id": ["T01", "T02", "T03"], "rep_id": ["R1", "R2", "R3"], "basis": "geo",
    "workload": [100.0, 80.0, 120.0], "capacity_accounts": [100.0, 100.0, 100.0],
    "center_latitude": [40.0, 34.0, 40.0], "center_longitude": [-74.0, -118.0, -74.0],
})
ASSIGNMENTS = pd.DataFrame({"account_id": ["a", "b", "c"], "territory_id": ["T01", "T02", "T02"]})
FEATURES = pd.DataFrame({"account_id": ["a", "b", "c"], "industry": ["retail", "software", "software"]})


def leads(**columns) -> pd.DataFrame:
    return pd.DataFrame({"account_id": [f"L{i}" for i in range(len(next(iter(columns.values()))))], **columns})


def test_json_lines_and_csv_read_alike(tmp_path: Path) -> None:
    rows = [{"Account ID": "L1", "Industry": "retail", "Employees": "120"}, {"Account ID": "L2", "Industry": ""}]
    (tmp_path / "l.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    pd.DataFrame(rows).to_csv(tmp_path / "l.csv", index=False)
    from_json, from_csv = read_leads(tmp_path / "l.jsonl"), read_leads(tmp_path / "l.csv")
    pd.testing.assert_frame_equal(from_json, from_csv)
    assert from_json["industry"].isna().tolist() == [False, True]


def test_fit_features_follow_the_dbt_derivation() -> None:
    features, technologies, attributes = lead_features(leads(
        employees=["5", "300", None], state=["NY", None, None], country=["US", "DE", None],
        technologies=["aws; slack", None, "aws"], budget=["1", None, "3"]))
    assert features["fit_size_band"].tolist() == ["1-9", "250-999", "unknown"]
    assert features["fit_region"].tolist() == ["NY", "DE", "unknown"]
    assert features["fit_technology_count"].tolist() == [2, 0, 1]
    assert np.isclose(features["fit_log_employees"].iloc[1], np.log(301))
    assert set(attributes["attribute"]) == {"budget"} and len(attributes) == 2
    assert sorted(technologies.itertuples(index=False)) == [("L0", "aws"), ("L0", "slack"), ("L2", "aws")]


def test_nearest_centre_ties_go_to_the_lower_territory_and_fallbacks_always_name_one() -> None:
    plan = territories_for_routing(TERRITORIES, ASSIGNMENTS, FEATURES)
    features, _, _ = lead_features(leads(
        latitude=["40.0", None, None, "35"], longitude=["-74.0", None, None, "-117"],
        industry=["x", "software", None, None]))
    territory, reason = find_territories(features, plan, RoutingPolicy())
    assert plan.ids[territory].tolist() == ["T01", "T02", "T02", "T02"]
    assert reason[1].startswith("fallback (industry)")
    # No coordinates and no known industry: the least-loaded territory (T02, 0.8 of capacity).
    assert reason[2].startswith("fallback (least_loaded)")
    assert reason[3].startswith("nearest territory centre")


def test_a_vertical_plan_routes_by_industry_first() -> None:
    plan = territories_for_routing(TERRITORIES.assign(basis="vertical"), ASSIGNMENTS, FEATURES)
    features, _, _ = lead_features(leads(latitude=["40.0"], longitude=["-74.0"], industry=["software"]))
    territory, reason = find_territories(features, plan, RoutingPolicy())
    assert plan.ids[territory].tolist() == ["T02"] and reason[0].startswith("vertical")


def test_sdrs_cover_the_nearest_territories_in_equal_shares() -> None:
    from ml.routing import pair_sdrs

    territories = pd.DataFrame({
        "territory_id": ["T1", "T2", "T3", "T4"],
        "center_latitude": [40.7, 40.0, 34.0, 33.5], "center_longitude": [-74.0, -75.1, -118.2, -117.9],
    })
    reps = pd.DataFrame({
        "rep_id": ["AE1", "S_WEST", "S_EAST"], "role": ["AE", "sdr", "SDR"],
        "latitude": [41.0, 34.1, 40.5], "longitude": [-80.0, -118.0, -74.5],
    })
    pods = pair_sdrs(territories, reps).set_index("territory_id")["sdr_rep_id"]
    assert pods.to_dict() == {"T1": "S_EAST", "T2": "S_EAST", "T3": "S_WEST", "T4": "S_WEST"}


def test_sdrs_take_turns_without_coordinates_and_none_without_sdrs() -> None:
    from ml.routing import pair_sdrs

    territories = pd.DataFrame({"territory_id": ["T1", "T2", "T3"]})
    reps = pd.DataFrame({"rep_id": ["S1", "S2", "AE"], "role": ["SDR", "SDR", "AE"],
                         "latitude": [None, None, None], "longitude": [None, None, None]})
    assert pair_sdrs(territories, reps)["sdr_rep_id"].tolist() == ["S1", "S2", "S1"]
    no_sdrs = pair_sdrs(territories, reps[reps["role"] == "AE"])
    assert no_sdrs["sdr_rep_id"].isna().all() and len(no_sdrs) == 3


def test_working_rep_follows_the_tier_owner_role() -> None:
    from orchestration.assets.territories import working_rep

    assignments = pd.DataFrame({
        "rep_id": ["AE1", "AE1", "AE1", "AE2"], "owner_role": ["AE", "SDR", "nurture", "SDR"],
        "sdr_rep_id": ["S1", "S1", "S1", None],
    })
    assert working_rep(assignments).tolist() == ["AE1", "S1", None, "AE2"]
