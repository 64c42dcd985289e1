"""account_attribute_profile on planted extra columns: identifiers and policy exclusions are left out, real
attributes (numbers and categories, even unique numbers) are kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
DBT = Path(sys.executable).with_name("dbt")
N = 60


def _values() -> list[tuple[str, str, str]]:
    rows = []
    for i in range(N):
        account = f"A{i:03d}"
        rows += [
            # A row number counted from 1001: consecutive whole numbers, one per account.
            (account, "OBJECTID", str(1001 + i)),
            (account, "website", f"https://www.company{i}.example"),
            # Unique, but a measurement (revenue-like, not consecutive): a real attribute.
            (account, "profit", str(round(1000 + 37.5 * i * i, 1))),
            (account, "segment", ["smb", "mid", "ent"][i % 3]),
            (account, "Acquisition_Cost", str(100 * i)),
            (account, "promo_code", f"P{i}"),
        ]
    # Too few values to judge: a unique text on 10 accounts is kept.
    rows += [(f"A{i:03d}", "nickname", f"n{i}") for i in range(10)]
    return rows


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    work_dir = tmp_path_factory.mktemp("profile")
    path = work_dir / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create table account_attribute_values (account_id varchar, attribute varchar, value varchar)")
        con.executemany("insert into account_attribute_values values (?, ?, ?)", _values())
    env = {**os.environ, "TERRITORY_WAREHOUSE": str(path), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    variables = {"exclude_attributes": ["acquisition_cost", "PROMO_CODE"]}
    result = subprocess.run(
        [str(DBT), "build", "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR),
         "--target-path", str(work_dir / "target"), "--log-path", str(work_dir / "logs"),
         "--select", "account_attribute_profile", "--vars", json.dumps(variables)],
        check=False, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute("select attribute, accounts_with_value, distinct_values, used_as_feature, excluded_reason "
                           "from account_attribute_profile").fetchall()
    return {row[0]: row[1:] for row in rows}


def test_identifiers_and_excluded_columns_are_left_out(profile: dict[str, tuple]) -> None:
    used = {name for name, row in profile.items() if row[2]}
    assert used == {"profit", "segment", "nickname"}
    assert profile["OBJECTID"][3].startswith("identifier: a row number")
    assert profile["website"][3].startswith("identifier: a different text")
    # The policy's names match whatever the case in the file.
    assert profile["Acquisition_Cost"][3] == profile["promo_code"][3] == \
        "excluded by the policy (scoring.exclude_attributes)"
    assert profile["segment"] == (N, 3, True, None)
    assert profile["nickname"][:2] == (10, 10)
