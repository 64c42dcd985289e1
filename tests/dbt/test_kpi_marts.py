"""The KPI marts on a hand-made warehouse: every rate, the forecast Brier and CAC payback computed by hand.

The KPI models read the dbt features and the tables the Python assets write; here both are planted as plain
tables, then only the `kpi`-tagged models are built (as the second dbt step of a run does).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
DBT = Path(sys.executable).with_name("dbt")
AS_OF = "2024-06-30"
# Ages 0..29 days: 2024-06-01 .. 2024-06-30.
WINDOW_DAYS = 30

TABLES = {
    "run_as_of": ("as_of_date date", [(AS_OF,)]),
    "territory_assignments": (
        "account_id varchar, territory_id varchar, rep_id varchar, tier varchar",
        [("A1", "T1", "R1", "A"), ("A2", "T1", "R1", "A"), ("A3", "T2", "R2", "B"), ("A4", "T2", "R2", "B"),
         ("A5", "T1", "R1", "C")],
    ),
    # A4 has no features row: it counts as 0 engaged ICP personas.
    "account_features": (
        "account_id varchar, persona_engaged_icp_personas_90d bigint",
        [("A1", 3), ("A2", 2), ("A3", 1), ("A5", 0)],
    ),
    "opportunity_outcomes": (
        ("opportunity_id varchar, account_id varchar, outcome varchar, created_at timestamp, "
         "closed_at timestamp, amount double"),
        [
            ("O1", "A1", "won", "2024-06-05", "2024-06-20", 12000.0),
            ("O2", "A1", "lost", "2024-04-01", "2024-06-10", 5000.0),
            ("O3", "A2", "open", "2024-06-15", None, 8000.0),
            # Closes after the as-of date: outside the window.
            ("O8", "A2", "won", "2024-06-20", "2024-07-02", 9000.0),
            # Created and closed before the window.
            ("O4", "A3", "won", "2024-01-01", "2024-03-01", 7000.0),
            ("O5", "A3", "open", "2024-05-01", None, None),
            ("O6", "A4", "lost", "2024-06-25", "2024-06-28", 3000.0),
            ("O7", "A5", "won", "2024-06-02", "2024-06-30", 2400.0),
        ],
    ),
    "stg_crm__activities": (
        "account_id varchar, rep_id varchar, activity_type varchar, occurred_at timestamp",
        [
            ("A1", "R1", "meeting", "2024-06-10 09:00"),
            ("A1", "R1", "call", "2024-06-11 09:00"),
            ("A1", "R1", "email", "2024-05-01 09:00"),
            ("A2", "R3", "call", "2024-06-12 09:00"),
            ("A3", "R2", "customer_meeting", "2024-06-29 09:00"),
            ("A3", "R2", "meeting", "2024-07-05 09:00"),
            ("A5", "R1", "email", "2024-06-30 09:00"),
            ("A5", None, "email", "2024-06-30 10:00"),
        ],
    ),
    "account_attribute_values": (
        "account_id varchar, attribute varchar, value varchar",
        [("A1", "acquisition_cost", "3000"), ("A3", "acquisition_cost", "5000"), ("A5", "acquisition_cost", "abc")],
    ),
    # R9 only holds routed leads: it is judged per tier, but is no planned rep.
    "monitor_sla": (
        "rep_id varchar, tier varchar, met bigint, breached bigint",
        [("R1", "A", 3, 1), ("R1", "C", 1, 1), ("R2", "B", 4, 0), ("R9", "A", 0, 2)],
    ),
    # Only predictions dated before the close day grade an opportunity; the latest of them does.
    "score_history": (
        "account_id varchar, predicted_as_of date, model_version varchar, conversion_probability double",
        [
            ("A1", "2024-06-01", "v1", 0.6), ("A1", "2024-06-15", "v1", 0.7), ("A1", "2024-06-25", "v2", 0.9),
            ("A3", "2024-02-01", "v1", 0.4), ("A3", "2024-03-01", "v1", 0.2),
            ("A4", "2024-06-28", "v1", 0.1),
            ("A5", "2024-06-29", "v2", 0.5),
        ],
    ),
}


def _build(work_dir: Path, tables: dict) -> Path:
    path = work_dir / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        for name, (columns, rows) in tables.items():
            con.execute(f"create table {name} ({columns})")
            con.executemany(f"insert into {name} values ({', '.join('?' for _ in rows[0])})", rows)
    env = {**os.environ, "TERRITORY_WAREHOUSE": str(path), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    result = subprocess.run(
        [str(DBT), "build", "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR),
         "--target-path", str(work_dir / "target"), "--log-path", str(work_dir / "logs"),
         "--select", "tag:kpi", "--vars", f"{{kpi_window_days: {WINDOW_DAYS}}}"],
        check=False, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    return path


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("kpi"), TABLES)


# An MQL-style export: wins carry their won date, losses no date at all (O2 and O6 lose their close dates).
UNDATED_LOSSES = {
    **TABLES,
    "opportunity_outcomes": (
        TABLES["opportunity_outcomes"][0],
        [row[:4] + (None,) + row[5:] if row[2] == "lost" else row for row in TABLES["opportunity_outcomes"][1]],
    ),
}


@pytest.fixture(scope="module")
def undated_losses_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("kpi_undated"), UNDATED_LOSSES)


def _rows(path: Path, sql: str) -> dict[str, dict]:
    """Rows keyed by their first column, each as a column -> value dict."""
    with duckdb.connect(str(path), read_only=True) as con:
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


def test_forecasts_are_graded_by_the_latest_prediction_before_the_close(warehouse: Path) -> None:
    graded = _rows(warehouse, "select opportunity_id, conversion_probability, won, squared_error "
                              "from int_opportunities_forecast_graded")
    # A1's 0.9 came after both its closes; A3's 0.2 and A4's 0.1 the day of the close; A2 was never scored.
    assert {k: (v["conversion_probability"], v["won"]) for k, v in graded.items()} == {
        "O1": (0.7, 1), "O2": (0.6, 0), "O4": (0.4, 1), "O7": (0.5, 1),
    }
    assert graded["O2"]["squared_error"] == pytest.approx(0.36)


def test_kpis_by_tier(warehouse: Path) -> None:
    tiers = _rows(warehouse, "select * from kpi_by_tier")
    a, b, c = tiers["A"], tiers["B"], tiers["C"]
    assert (a["accounts"], b["accounts"], c["accounts"]) == (2, 2, 1)
    assert (a["open_pipeline_amount"], a["pipeline_per_account"]) == (8000.0, 4000.0)
    assert (b["open_pipeline_amount"], c["open_pipeline_amount"]) == (0.0, 0.0)
    # O1 won and O2 lost in the window; O8 closes after the as-of date, O4 before the window.
    assert (a["closed_opportunities"], a["won_opportunities"], a["win_rate"]) == (2, 1, 0.5)
    assert (b["closed_opportunities"], b["win_rate"]) == (1, 0.0)
    assert c["win_rate"] == 1.0
    # A1's meeting counts for A; A3's customer_meeting for B; A3's later meeting is after the as-of date.
    assert (a["meeting_rate"], b["meeting_rate"], c["meeting_rate"]) == (0.5, 0.5, 0.0)
    assert (a["accounts_2plus_icp_personas"], a["opportunity_creation_rate_2plus_icp_personas"]) == (2, 1.0)
    assert a["opportunity_creation_rate_under_2_icp_personas"] is None
    # B: A3 (1 persona, last opportunity created 60 days back) did not, A4 (no features row) did.
    assert (b["accounts_under_2_icp_personas"], b["opportunity_creation_rate_under_2_icp_personas"]) == (2, 0.5)
    assert b["opportunity_creation_rate_2plus_icp_personas"] is None
    # A: 3 touches in the window by R1 and R3; C: 2 touches, one without a rep.
    assert (a["touches"], a["touching_reps"], a["touches_per_rep"]) == (3, 2, 1.5)
    assert (c["touches"], c["touching_reps"], c["touches_per_rep"]) == (2, 1, 2.0)
    # A: R1's 3 of 4 plus the routed R9's 0 of 2.
    assert (a["sla_judged"], a["sla_met"], a["sla_compliance"]) == (6, 3, 0.5)
    assert (b["sla_compliance"], c["sla_compliance"]) == (1.0, 0.5)
    # Not windowed. A: O1 (0.7, won) and O2 (0.6, lost); B: O4 (0.4, won), O6 has no earlier prediction; C: O7.
    assert a["forecast_opportunities"] == 2
    assert a["forecast_brier"] == pytest.approx((0.3**2 + 0.6**2) / 2)
    assert (b["forecast_opportunities"], b["forecast_brier"]) == (1, pytest.approx(0.36))
    assert c["forecast_brier"] == pytest.approx(0.25)
    # A1 cost 3000 and won 12000 a year: 3 months. A3 won outside the window; A5's cost is not a number.
    assert (a["acquisition_cost"], a["cac_payback_months"]) == (3000.0, pytest.approx(3.0))
    assert (b["cac_payback_months"], c["acquisition_cost"], c["cac_payback_months"]) == (None, None, None)
    assert {str(t["as_of_date"]) for t in tiers.values()} == {AS_OF}
    assert {t["window_days"] for t in tiers.values()} == {WINDOW_DAYS}


def test_kpis_by_rep_and_territory(warehouse: Path) -> None:
    reps = _rows(warehouse, "select * from kpi_by_rep")
    # R9 holds no planned account, so it has no row; R3 only touched an account.
    assert set(reps) == {"R1", "R2"}
    r1 = reps["R1"]
    assert (r1["accounts"], r1["win_rate"]) == (3, pytest.approx(2 / 3))
    assert (r1["touches"], r1["touching_reps"], r1["touches_per_rep"]) == (5, 2, 2.5)
    assert r1["meeting_rate"] == pytest.approx(1 / 3)
    assert (r1["opportunity_creation_rate_2plus_icp_personas"], r1["opportunity_creation_rate_under_2_icp_personas"]) \
        == (1.0, 1.0)
    assert (r1["sla_judged"], r1["sla_compliance"]) == (6, pytest.approx(4 / 6))
    assert (r1["forecast_opportunities"], r1["forecast_brier"]) == (3, pytest.approx((0.09 + 0.36 + 0.25) / 3))
    territories = _rows(warehouse, "select * from kpi_by_territory")
    assert set(territories) == {"T1", "T2"}
    assert {k: v for k, v in territories["T1"].items() if k != "territory_id"} == \
        {k: v for k, v in r1.items() if k != "rep_id"}
    assert (territories["T2"]["sla_compliance"], territories["T2"]["win_rate"]) == (1.0, 0.0)


def test_outcomes_are_not_windowed_when_losses_carry_no_close_date(warehouse: Path,
                                                                  undated_losses_warehouse: Path) -> None:
    dated = _rows(warehouse, "select * from kpi_by_tier")
    assert {t["outcome_window_days"] for t in dated.values()} == {WINDOW_DAYS}
    tiers = _rows(undated_losses_warehouse, "select * from kpi_by_tier")
    # Every outcome counts: A has O1 and O8 won and O2 lost; B has O4 won and O6 lost; C has O7 won.
    assert {k: (v["won_opportunities"], v["closed_opportunities"]) for k, v in tiers.items()} == \
        {"A": (2, 3), "B": (1, 2), "C": (1, 1)}
    assert tiers["A"]["win_rate"] == pytest.approx(2 / 3)
    assert tiers["A"]["won_amount"] == 21000.0
    assert {t["outcome_window_days"] for t in tiers.values()} == {None}
    # The flow KPIs that are dated keep their window.
    assert {t["window_days"] for t in tiers.values()} == {WINDOW_DAYS}
    assert (tiers["A"]["touches"], tiers["A"]["meeting_rate"]) == (3, 0.5)
