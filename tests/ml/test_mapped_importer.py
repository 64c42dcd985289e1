"""Tests for `territory import mapped`: any CSV onto a contract table, and the Fortune 500 headquarters
planned geographically from it."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from ml.importers._source import SourceError
from ml.importers.mapped import import_mapped, parse_mapping
from ml.policy import Policy

FORTUNE500 = Path(__file__).resolve().parents[3] / "shared" / "data" / "fortune500_hq_hifld"
FORTUNE_MAP = (
    "account_id=RANK,account_name=NAME,latitude=LATITUDE,longitude=LONGITUDE,annual_revenue=REVENUES,"
    "employees=EMPLOYEES,city=CITY,state=STATE,postal_code=ZIP"
)


def test_mapped_columns_are_renamed_and_the_others_kept(tmp_path):
    src = tmp_path / "export.csv"
    src.write_text("Rank,Lat,Lon,City,Segment\n1,40.7,-74.0,NYC,ent\n2,34.1,-118.2,LA,smb\n")
    summary = import_mapped(
        src, "accounts", parse_mapping("account_id=Rank,latitude=Lat,city=Lon"), tmp_path / "out"
    )
    frame = pd.read_csv(tmp_path / "out" / "accounts.csv")
    assert list(frame.columns) == ["account_id", "latitude", "city", "source_city", "segment"]
    assert frame["source_city"].tolist() == ["NYC", "LA"] and summary["rows_written"] == {"accounts.csv": 2}
    assert any("source_<name>" in note for note in summary["notes"])


def test_mapping_errors_name_what_to_fix(tmp_path):
    src = tmp_path / "export.csv"
    src.write_text("Rank,Lat\n1,40.7\n")
    with pytest.raises(SourceError, match="account_id"):
        import_mapped(src, "accounts", {"latitude": "Lat"}, tmp_path / "a")
    with pytest.raises(SourceError, match="no column"):
        import_mapped(src, "accounts", {"account_id": "RANK"}, tmp_path / "b")
    with pytest.raises(SourceError, match="not columns of accounts"):
        import_mapped(src, "accounts", {"acct": "Rank"}, tmp_path / "c")
    with pytest.raises(SourceError, match="contract_column=SOURCE_COLUMN"):
        parse_mapping("account_id")


def test_a_repeated_key_is_refused_and_a_composite_key_resolves_it(tmp_path):
    src = tmp_path / "cities.csv"
    src.write_text("City,State,Population\nSpringfield,Illinois,114000\nSpringfield,Missouri,169000\n"
                   "Springfield,Massachusetts,155000\nPortland,Oregon,650000\nPortland,Maine,68000\n"
                   "Boise,,235000\n")
    with pytest.raises(SourceError, match=r"'City', mapped to account_id, repeats 2 value\(s\), e\.g\. "
                                          r"'Springfield' \(3 rows\), 'Portland' \(2 rows\);.*"
                                          r"--map account_id=COLUMN_A\+COLUMN_B"):
        import_mapped(src, "accounts", parse_mapping("account_id=City"), tmp_path / "a")
    assert not (tmp_path / "a" / "accounts.csv").exists()
    summary = import_mapped(src, "accounts", parse_mapping("account_id=City+State"), tmp_path / "b")
    frame = pd.read_csv(tmp_path / "b" / "accounts.csv", keep_default_na=False)
    assert frame["account_id"].tolist()[:5] == [
        "Springfield / Illinois", "Springfield / Missouri", "Springfield / Massachusetts", "Portland / Oregon",
        "Portland / Maine",
    ]
    # A blank part leaves the key blank: the pipeline rejects that row with its reason instead of guessing.
    assert frame["account_id"].iloc[5] == ""
    # The parts stay as columns of their own (City and State are the contract's city and state).
    assert list(frame.columns) == ["account_id", "city", "state", "population"]
    assert summary["rows_written"] == {"accounts.csv": 6}
    assert "of these, read as the contract's own columns (their names match): City -> city, State -> state" \
        in summary["notes"]


def test_fortune500_headquarters_plan_into_twenty_balanced_geographic_territories(tmp_path):
    if not FORTUNE500.exists():
        pytest.skip(f"real dataset folder {FORTUNE500} is absent")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from territories import read_export, reps_for

    from ml.territories import plan_territories
    from ml.territory_report import territory_map

    import_mapped(FORTUNE500 / "fortune_500_hq.csv", "accounts", parse_mapping(FORTUNE_MAP), tmp_path)
    policy = Policy()
    accounts = read_export(tmp_path, "annual_revenue", policy.tiers)
    reps = reps_for(None, accounts, 20, seed=1)
    territory_policy = policy.territories.model_copy(update={"tolerance": 0.05})
    plan = plan_territories(accounts, reps, territory_policy, policy.workload_weights)
    assert plan.basis == "geo" and len(plan.territories) == 20
    assert plan.territories["account_count"].sum() == 500
    assert plan.balance["potential"] <= 0.05 and plan.balance["account_count"] <= 0.05
    path = territory_map(accounts, plan.assignments, reps, tmp_path / "fortune500.png", "Fortune 500")
    assert path.stat().st_size > 10_000
