"""Loader tests: fatal problems name file, column and rows; everything else lands in raw as text."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest

from ml.ingest import InputError, load_export, normalise_column_name


def write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


@pytest.fixture
def export(tmp_path: Path) -> Path:
    folder = tmp_path / "export"
    write(folder, "accounts.csv", "\ufeffAccount ID,Industry,Employees,Ownership\nA1,software,10,public\n"
                                  "A2,retail,abc,private\n,retail,5,pe\n")
    write(folder, "opportunities.csv", "opportunity_id,account_id,stage,amount\nO1,A1,Closed Won,100\nO2,A9,lost,\n")
    write(folder, "reps.csv", "rep_id,role\nR1,AE\n")
    return folder


def test_loads_every_contract_column_as_text_with_row_numbers(export: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "w.duckdb"
    result = load_export(export, warehouse)
    assert result.counts()["accounts"] == 3
    assert result.tables["contacts"].source_file is None
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute("select account_id, employees, _row_number from raw.accounts order by _row_number").fetchall()
        assert rows == [("A1", "10", 1), ("A2", "abc", 2), (None, "5", 3)]
        assert con.execute("select count(*) from raw.engagement_events").fetchone()[0] == 0
        columns = {r[0] for r in con.execute("describe raw.accounts").fetchall()}
        assert {"latitude", "technologies", "owner_rep_id", "_source_file"} <= columns
        attributes = con.execute(
            "select account_id, attribute, value from raw.account_attributes order by _row_number").fetchall()
        assert attributes == [("A1", "ownership", "public"), ("A2", "ownership", "private"), (None, "ownership", "pe")]
        manifest = dict(con.execute("select table_name, present from raw.load_manifest").fetchall())
        assert manifest["accounts"] is True and manifest["activities"] is False


def test_missing_required_file_is_named(export: Path, tmp_path: Path) -> None:
    (export / "reps.csv").unlink()
    with pytest.raises(InputError, match=r"required file 'reps.csv'"):
        load_export(export, tmp_path / "w.duckdb")


def test_missing_required_column_is_named(export: Path, tmp_path: Path) -> None:
    write(export, "opportunities.csv", "opportunity_id,account_id\nO1,A1\n")
    with pytest.raises(InputError, match=r"opportunities.csv: required column\(s\) \['stage'\]"):
        load_export(export, tmp_path / "w.duckdb")


def test_duplicate_ids_name_column_and_rows(export: Path, tmp_path: Path) -> None:
    write(export, "reps.csv", "rep_id,role\nR1,AE\nR2,AE\nR1,SDR\n")
    with pytest.raises(InputError, match=r"reps.csv: column 'rep_id' must be unique .* 'R1' on rows \[1, 3\]"):
        load_export(export, tmp_path / "w.duckdb")


def test_unreadable_file_is_named(export: Path, tmp_path: Path) -> None:
    (export / "accounts.csv").unlink()
    (export / "accounts.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match=r"accounts.parquet: the file cannot be read"):
        load_export(export, tmp_path / "w.duckdb")


def test_parquet_values_become_text(export: Path, tmp_path: Path) -> None:
    (export / "accounts.csv").unlink()
    pl.DataFrame({"account_id": ["A1", "A2"], "employees": [10, 20]}).write_parquet(export / "accounts.parquet")
    warehouse = tmp_path / "w.duckdb"
    load_export(export, warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select employees from raw.accounts order by _row_number").fetchall() == [("10",), ("20",)]


def test_a_failed_load_leaves_the_previous_raw_tables(export: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "w.duckdb"
    load_export(export, warehouse)
    write(export, "reps.csv", "rep_id\nR1\nR1\n")
    with pytest.raises(InputError):
        load_export(export, warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from raw.accounts").fetchone()[0] == 3


def test_column_names_are_normalised() -> None:
    assert normalise_column_name("\ufeffAccount ID ") == "account_id"
    assert normalise_column_name("Annual-Revenue ($)") == "annual_revenue"
