"""End-to-end check of the dbt project: a tiny raw layer with planted bad rows, one `dbt build`, then the
staging rejects, the reconciliation and hand-computed features."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml

from ml.contract import TABLES, TABLES_BY_NAME, TIMESTAMP_FORMATS

PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
DBT = Path(sys.executable).with_name("dbt")
AS_OF = "2024-06-30"
HALF_LIFE_DAYS = 30

# One dict per data row, in file order (row 1 first); absent keys are NULL, as for a missing column.
RAW_ROWS: dict[str, list[dict[str, str]]] = {
    "accounts": [
        {"account_id": "A1", "account_name": "Acme", "industry": " Software ", "employees": "250",
         "annual_revenue": "5000000", "country": "US", "state": "CA", "city": "San Francisco",
         "latitude": "37.77", "longitude": "-122.41", "technologies": "Salesforce; HubSpot ;salesforce; ",
         "owner_rep_id": "R1", "created_at": "2020-01-15"},
        {"account_id": "A2", "account_name": "Beta", "industry": "Retail", "employees": "40", "country": "US",
         "state": "NY", "parent_account_id": "A1", "owner_rep_id": "R2", "created_at": "03/15/2021"},
        {"account_id": "  ", "account_name": "No id"},
        {"account_id": "A4", "employees": "abc"},
        {"account_id": "A5", "account_name": "Gamma", "country": "DE", "employees": ""},
        {"account_id": "A6", "latitude": "95", "longitude": "10"},
    ],
    "opportunities": [
        {"opportunity_id": "O1", "account_id": "A1", "stage": "Closed Won", "created_at": "2023-01-01",
         "closed_at": "2023-03-01", "amount": "10000"},
        {"opportunity_id": "O2", "account_id": "A2", "stage": "closed lost"},
        {"opportunity_id": "O3", "account_id": "A5", "stage": "Negotiation"},
        {"opportunity_id": "O4", "account_id": "ZZZ", "stage": "won"},
        {"opportunity_id": "O5", "account_id": "A4", "stage": "won"},
        {"opportunity_id": "O6", "account_id": "A1", "stage": "Won", "closed_at": "31/31/2020"},
    ],
    "reps": [
        {"rep_id": "R1", "name": "Ann", "role": "ae", "capacity_accounts": "50"},
        {"rep_id": "R2", "name": "Bob"},
        {"rep_id": "R3", "name": "Cy", "role": "sdr"},
    ],
    "contacts": [
        {"contact_id": "C1", "account_id": "A1", "title": "CEO"},
        {"contact_id": "C2", "account_id": "A1", "title": "Director of Revenue Operations"},
        {"contact_id": "C3", "account_id": "A1", "title": "Software Engineer"},
        {"contact_id": "C4", "account_id": "A2", "title": "Sales Analyst"},
        {"contact_id": "C5", "account_id": "A9", "title": "CFO"},
    ],
    "engagement_events": [
        {"event_id": "E1", "account_id": "A1", "event_type": "pricing_page_view",
         "occurred_at": "2024-06-30 10:00:00", "contact_id": "C1"},
        {"account_id": "A1", "event_type": "Pricing Page View", "occurred_at": "06/15/2024"},
        {"event_id": "E3", "account_id": "A1", "event_type": "web_visit", "occurred_at": "2024-05-31",
         "contact_id": "C2", "value": "2"},
        {"event_id": "E4", "account_id": "A1", "event_type": "intent_surge", "occurred_at": "2024-05-01"},
        {"event_id": "E5", "account_id": "A1", "event_type": "content_download", "occurred_at": "2024-07-05"},
        {"event_id": "E6", "account_id": "A1", "event_type": "pricing_page_view", "occurred_at": "2024-07-01",
         "contact_id": "C4"},
        {"event_id": "E7", "account_id": "A1", "event_type": "web_visit", "occurred_at": "2024-06-20",
         "contact_id": "C3"},
        {"event_id": "E8", "account_id": "A2", "event_type": "email_click", "occurred_at": "2024-01-01"},
        {"event_id": "E9", "account_id": "A1", "event_type": "web_visit", "occurred_at": "2024-13-45"},
        {"event_id": "E10", "account_id": "A9", "event_type": "web_visit", "occurred_at": "2024-06-01"},
        # Nine days before O1 closed: the only event O1's training row may see (the 2024 ones came after).
        {"event_id": "E11", "account_id": "A1", "event_type": "pricing_page_view",
         "occurred_at": "2023-02-20 09:00:00", "contact_id": "C2"},
    ],
    "account_signals": [
        {"account_id": "A1", "signal": "Intent Score", "value": "55", "observed_at": "2024-06-01"},
        {"account_id": "A1", "signal": "intent_score", "value": "70", "layer": "engagement",
         "observed_at": "2024-07-15"},
        {"account_id": "A1", "signal": "intent score", "value": "60", "observed_at": "2024-06-20"},
        {"account_id": "A2", "signal": "web_sessions", "value": "inf"},
        {"account_id": "A2", "signal": "g2_rating", "value": "4.5", "layer": "Fit"},
        # Text is a category of the signal, not a bad number.
        {"account_id": "A2", "signal": "Last Activity", "value": " Email Opened ", "layer": "engagement"},
    ],
    # The optional activities file is absent: an empty table, listed as not present.
    "activities": [],
}
# Extra account columns, unpivoted; the number is the accounts file row the value came from.
ACCOUNT_ATTRIBUTES = [
    ("A1", "segment_score", "0.7", 1),
    ("A2", "segment_score", "", 2),
    ("A4", "segment_score", "0.1", 4),
    ("A5", "segment_score", "0.3", 5),
]
EXPECTED_REJECTS = {
    ("accounts", 3, "empty account_id"),
    ("accounts", 4, "employees is not a number: 'abc'"),
    ("accounts", 6, "latitude out of range"),
    ("opportunities", 4, "unknown account_id 'ZZZ'"),
    ("opportunities", 5, "account_id 'A4' was rejected in the accounts file"),
    ("opportunities", 6, "closed_at is not a date: '31/31/2020'"),
    ("contacts", 5, "unknown account_id 'A9'"),
    ("engagement_events", 9, "occurred_at is not a date: '2024-13-45'"),
    ("engagement_events", 10, "unknown account_id 'A9'"),
    ("account_signals", 4, "value is not a finite number: 'inf'"),
}


def _write_raw_layer(path: Path) -> None:
    """The raw schema as ml/ingest.py writes it: contract columns as VARCHAR plus bookkeeping columns."""
    with duckdb.connect(str(path)) as con:
        con.execute("create schema raw")
        for spec in TABLES:
            columns = ", ".join(f'"{c}" varchar' for c in spec.columns)
            con.execute(f"create table raw.{spec.name} ({columns}, _row_number bigint, _source_file varchar)")
            rows = RAW_ROWS[spec.name]
            if rows:
                placeholders = ", ".join("?" for _ in range(len(spec.columns) + 2))
                con.executemany(
                    f"insert into raw.{spec.name} values ({placeholders})",
                    [[row.get(c) for c in spec.columns] + [i, f"{spec.name}.csv"] for i, row in enumerate(rows, 1)],
                )
        con.execute(
            "create table raw.account_attributes (account_id varchar, attribute varchar, value varchar,"
            " _row_number bigint)"
        )
        con.executemany("insert into raw.account_attributes values (?, ?, ?, ?)", ACCOUNT_ATTRIBUTES)
        con.execute(
            "create table raw.load_manifest (table_name varchar, source_file varchar, present boolean,"
            " input_rows bigint)"
        )
        con.executemany(
            "insert into raw.load_manifest values (?, ?, ?, ?)",
            [
                (name, f"{name}.csv" if rows else None, bool(rows), len(rows))
                for name, rows in RAW_ROWS.items()
            ],
        )


def _dbt(command: str, warehouse: Path, work_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run dbt on the project against `warehouse`; callers assert on the return code to show dbt's output."""
    env = {**os.environ, "TERRITORY_WAREHOUSE": str(warehouse), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    return subprocess.run(
        [str(DBT), command, "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR),
         "--target-path", str(work_dir / "target"), "--log-path", str(work_dir / "logs"), *args],
        check=False, env=env, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work_dir = tmp_path_factory.mktemp("dbt")
    path = work_dir / "warehouse.duckdb"
    _write_raw_layer(path)
    result = _dbt(
        "build", path, work_dir,
        "--vars", f'{{as_of_date: "{AS_OF}", engagement_half_life_days: {HALF_LIFE_DAYS}}}',
        # The KPI models read tables the Python assets write; tests/dbt/test_kpi_marts.py builds them.
        "--exclude", "tag:kpi",
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    return path


def _query(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def _account_features(path: Path, account_id: str) -> dict:
    with duckdb.connect(str(path), read_only=True) as con:
        cursor = con.execute("select * from main.account_features where account_id = ?", [account_id])
        names = [d[0] for d in cursor.description]
        return dict(zip(names, cursor.fetchone(), strict=True))


def _decay(age_days: float) -> float:
    return 0.5 ** (age_days / HALF_LIFE_DAYS)


def test_rejected_rows_hold_exactly_the_planted_bad_rows(warehouse: Path) -> None:
    rows = _query(warehouse, "select table_name, row_number, reason from main.rejected_rows")
    assert set(rows) == EXPECTED_REJECTS
    assert len(rows) == len(EXPECTED_REJECTS)


def test_rejected_rows_keep_file_and_raw_values(warehouse: Path) -> None:
    rows = _query(warehouse, "select table_name, file, row_number, raw_values from main.rejected_rows")
    for table_name, file, row_number, raw_values in rows:
        assert file == f"{table_name}.csv"
        raw = json.loads(raw_values)
        assert list(raw) == list(TABLES_BY_NAME[table_name].columns)
        planted = RAW_ROWS[table_name][row_number - 1]
        assert raw == {column: planted.get(column) for column in raw}


def test_input_row_counts_reconcile_per_file(warehouse: Path) -> None:
    rows = _query(
        warehouse,
        "select table_name, present, input_rows, accepted_rows, rejected_rows from main.input_row_counts",
    )
    rejected_per_table: dict[str, int] = {}
    for table_name, _, _ in EXPECTED_REJECTS:
        rejected_per_table[table_name] = rejected_per_table.get(table_name, 0) + 1
    expected = {
        (name, bool(raw), len(raw), len(raw) - rejected_per_table.get(name, 0), rejected_per_table.get(name, 0))
        for name, raw in RAW_ROWS.items()
    }
    assert set(rows) == expected


def test_us_format_dates_parse(warehouse: Path) -> None:
    [(created_at,)] = _query(warehouse, "select created_at from main.stg_crm__accounts where account_id = 'A2'")
    assert str(created_at) == "2021-03-15 00:00:00"
    [(occurred_at,)] = _query(
        warehouse, "select occurred_at from main.stg_crm__engagement_events where event_id = 'row-2'"
    )
    assert str(occurred_at) == "2024-06-15 00:00:00"


def test_engagement_features_of_hand_checked_account(warehouse: Path) -> None:
    a1 = _account_features(warehouse, "A1")
    # Up to the as-of date A1 has E1 (age 0), row 2 (15), E7 (10), E3 (30, value 2) and E4 (60);
    # E5 and E6 happen after it and must not count.
    assert a1["eng_events_30d"] == 3
    assert a1["eng_events_90d"] == 5
    assert a1["eng_events_180d"] == 5
    assert a1["eng_pricing_views_30d"] == 2
    assert a1["eng_pricing_views_90d"] == 2
    assert a1["eng_has_pricing_view_30d"] == 1
    assert a1["eng_decayed_intensity_30d"] == pytest.approx(_decay(0) + _decay(15) + _decay(10))
    assert a1["eng_decayed_intensity_90d"] == pytest.approx(
        _decay(0) + _decay(15) + _decay(10) + 2 * _decay(30) + _decay(60)
    )
    assert a1["eng_third_party_intent_90d"] == 1
    assert a1["eng_has_third_party_intent_90d"] == 1
    assert a1["eng_web_visits_90d"] == 4
    assert a1["eng_content_downloads_90d"] == 0
    assert a1["eng_days_since_last_event"] == 0


def test_accounts_without_recent_events_get_zeros(warehouse: Path) -> None:
    a2 = _account_features(warehouse, "A2")
    assert (a2["eng_events_180d"], a2["eng_email_clicks_90d"], a2["eng_days_since_last_event"]) == (0, 0, 181)
    a5 = _account_features(warehouse, "A5")
    assert a5["eng_events_180d"] == 0
    assert a5["eng_decayed_intensity_180d"] == 0.0
    assert a5["eng_days_since_last_event"] is None
    assert (a5["persona_contacts"], a5["persona_engaged_contacts_90d"]) == (0, 0)


def _training_row(path: Path, opportunity_id: str) -> dict:
    with duckdb.connect(str(path), read_only=True) as con:
        cursor = con.execute("select * from main.training_features where opportunity_id = ?", [opportunity_id])
        names = [d[0] for d in cursor.description]
        return dict(zip(names, cursor.fetchone(), strict=True))


def test_training_rows_never_see_events_after_their_opportunity_closed(warehouse: Path) -> None:
    # O1 (A1, won) closed 2023-03-01; every other A1 event (E1..E7, all 2024) came after it.
    o1 = _training_row(warehouse, "O1")
    assert o1["is_point_in_time"] is True and str(o1["feature_cutoff_at"]) == "2023-03-01 00:00:00"
    assert (o1["eng_events_30d"], o1["eng_events_180d"], o1["eng_pricing_views_30d"]) == (1, 1, 1)
    assert o1["eng_decayed_intensity_180d"] == pytest.approx(_decay(9))
    assert o1["eng_days_since_last_event"] == 9
    assert (o1["eng_third_party_intent_90d"], o1["eng_content_downloads_90d"]) == (0, 0)
    # Only C2 engaged before the close; undated contacts count as on file.
    assert (o1["persona_contacts"], o1["persona_engaged_contacts_90d"], o1["persona_engaged_icp_personas_90d"]) == (
        3, 1, 1)
    # The account's as-of row does count the later events: the training row differs because of the cutoff.
    assert _account_features(warehouse, "A1")["eng_events_180d"] == 5
    # A1's signals were all observed in 2024, after the close.
    assert _query(warehouse, "select count(*) from main.training_signal_features where opportunity_id = 'O1'") == [(0,)]


def test_undated_opportunities_train_on_as_of_features(warehouse: Path) -> None:
    # O2 (A2, lost) has no dates, as lead exports often do: its row is the account's as-of features.
    o2 = _training_row(warehouse, "O2")
    a2 = _account_features(warehouse, "A2")
    assert o2["is_point_in_time"] is False and o2["feature_cutoff_at"] is None
    assert {k: v for k, v in o2.items() if k.startswith(("eng_", "persona_"))} == {
        k: v for k, v in a2.items() if k.startswith(("eng_", "persona_"))
    }
    assert _query(warehouse, "select signal, value, value_text from main.training_signal_features "
                             "where opportunity_id = 'O2' order by signal") == [
        ("g2_rating", 4.5, None), ("last_activity", None, "Email Opened"),
    ]
    # Open and rejected opportunities are not training rows.
    assert _query(warehouse, "select opportunity_id from main.training_features order by 1") == [("O1",), ("O2",)]


def test_persona_coverage(warehouse: Path) -> None:
    a1 = _account_features(warehouse, "A1")
    # C1 (CEO), C2 (revenue operations director) and C3 (engineer) engaged: three ICP personas filling
    # three of the five committee roles.
    assert a1["persona_contacts"] == 3
    assert a1["persona_engaged_contacts_90d"] == 3
    assert a1["persona_engaged_icp_personas_90d"] == 3
    assert a1["persona_has_2plus_icp_personas"] == 1
    assert a1["persona_committee_completeness"] == pytest.approx(3 / 5)
    a2 = _account_features(warehouse, "A2")
    # C4 only engaged after the as-of date.
    assert (a2["persona_contacts"], a2["persona_engaged_contacts_90d"]) == (1, 0)
    assert a2["persona_has_2plus_icp_personas"] == 0


def test_fit_features(warehouse: Path) -> None:
    a1 = _account_features(warehouse, "A1")
    assert a1["fit_industry"] == "software"
    assert a1["fit_size_band"] == "250-999"
    assert a1["region"] == a1["fit_region"] == "CA"
    assert a1["fit_log_employees"] == pytest.approx(math.log(251))
    assert a1["fit_technology_count"] == 2
    assert (a1["fit_has_parent"], a1["fit_child_count"]) == (0, 1)
    a5 = _account_features(warehouse, "A5")
    assert (a5["fit_region"], a5["fit_size_band"], a5["fit_log_employees"]) == ("DE", "unknown", None)
    assert _query(warehouse, "select count(*) from main.account_features") == [(3,)]


def test_long_tables(warehouse: Path) -> None:
    assert set(_query(warehouse, "select account_id, technology from main.account_technologies")) == {
        ("A1", "salesforce"), ("A1", "hubspot"),
    }
    assert set(_query(warehouse, "select account_id, attribute, value from main.account_attribute_values")) == {
        ("A1", "segment_score", "0.7"), ("A5", "segment_score", "0.3"),
    }
    assert set(_query(warehouse, "select account_id, layer, signal, value, value_text "
                                 "from main.account_signal_features")) == {
        ("A1", "fit", "intent_score", 60.0, None), ("A2", "fit", "g2_rating", 4.5, None),
        ("A2", "engagement", "last_activity", None, "Email Opened"),
    }


def test_outcomes_reps_policy_and_as_of(warehouse: Path) -> None:
    assert set(_query(warehouse, "select opportunity_id, outcome from main.opportunity_outcomes")) == {
        ("O1", "won"), ("O2", "lost"), ("O3", "open"),
    }
    assert set(_query(warehouse, "select rep_id, role, capacity_accounts from main.rep_capacity")) == {
        ("R1", "AE", 50.0), ("R2", "AE", None), ("R3", "SDR", None),
    }
    assert _query(warehouse, "select tier, owner_role, sla_hours from main.tier_policy order by tier") == [
        ("A", "AE", 4), ("B", "SDR", 24), ("C", "nurture", 72),
    ]
    assert _query(warehouse, "select cast(as_of_date as varchar) from main.run_as_of") == [(AS_OF,)]


def test_sources_list_the_contract_columns() -> None:
    sources = yaml.safe_load((PROJECT_DIR / "models" / "staging" / "crm" / "_crm__sources.yml").read_text())
    tables = {t["name"]: [c["name"] for c in t["columns"]] for t in sources["sources"][0]["tables"]}
    for spec in TABLES:
        assert tables[spec.name] == [*spec.columns, "_row_number", "_source_file"]


def test_timestamp_formats_match_the_contract() -> None:
    project = yaml.safe_load((PROJECT_DIR / "dbt_project.yml").read_text())
    assert tuple(project["vars"]["timestamp_formats"]) == TIMESTAMP_FORMATS


def test_parse_needs_no_database(tmp_path: Path) -> None:
    warehouse = tmp_path / "absent.duckdb"
    result = _dbt("parse", warehouse, tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]
    assert not warehouse.exists()


def test_engaged_contacts_per_persona_as_of_and_before_each_cutoff(warehouse: Path) -> None:
    personas = {r[0] for r in _query(warehouse, "select persona from main.personas")}
    as_of = dict(_query(warehouse, "select persona, engaged_contacts_90d from main.account_persona_engagement "
                                   "where account_id = 'A1'"))
    # Every persona of the seed has a row, zero included: C1 (CEO), C2 (revenue operations director) and C3
    # (engineer) engaged in the last 90 days.
    assert set(as_of) == personas
    assert {p: n for p, n in as_of.items() if n} == {"economic_buyer": 1, "champion": 1, "technical_evaluator": 1}
    # O1 closed 2023-03-01, when only C2 had engaged; O2 is undated, so it reads A2's as-of counts (none).
    o1 = dict(_query(warehouse, "select persona, engaged_contacts_90d from main.training_persona_engagement "
                                "where opportunity_id = 'O1'"))
    assert set(o1) == personas and {p: n for p, n in o1.items() if n} == {"champion": 1}
    o2 = _query(warehouse, "select count(*), sum(engaged_contacts_90d) from main.training_persona_engagement "
                           "where opportunity_id = 'O2'")
    assert o2 == [(len(personas), 0)]
