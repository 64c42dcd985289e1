"""Load one CRM export folder (CSV or Parquet) into the warehouse's raw schema, refusing what cannot be read.

Every contract column lands as text, with the file's row number, so that typing and row-level rejects
happen in dbt where analysts can read them. Problems that make the whole file untrustworthy (a missing
required file or column, an unreadable file, duplicate ids) stop the load here with a message naming the
file, the column and the rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from ml.contract import TABLES, TableSpec

SUPPORTED_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".parquet")
RAW_SCHEMA = "raw"
MAX_ROWS_IN_MESSAGE = 5


class InputError(ValueError):
    """An export that cannot be loaded; the message names the file, the column and what to do."""


@dataclass
class TableLoad:
    table: str
    source_file: str | None
    input_rows: int
    extra_columns: list[str] = field(default_factory=list)


@dataclass
class LoadResult:
    input_dir: str
    tables: dict[str, TableLoad]
    notes: list[str]

    def counts(self) -> dict[str, int]:
        return {name: load.input_rows for name, load in self.tables.items()}


def normalise_column_name(name: str) -> str:
    """Lower-case snake_case, so `Account ID` and `account_id` both match the contract."""
    cleaned = re.sub(r"[^0-9a-zA-Z]+", "_", name.replace("\ufeff", "").strip()).strip("_").lower()
    return cleaned or "column"


def find_table_file(input_dir: Path, table: str) -> Path | None:
    """The file holding `table`, or None; two files for one table is ambiguous and refused."""
    matches = [input_dir / f"{table}{suffix}" for suffix in SUPPORTED_SUFFIXES]
    present = [path for path in matches if path.exists()]
    if len(present) > 1:
        names = ", ".join(p.name for p in present)
        raise InputError(f"{input_dir}: table '{table}' is given twice ({names}); keep one file per table")
    return present[0] if present else None


def read_table_file(path: Path) -> pl.DataFrame:
    """Read a file as text columns plus a 1-based `_row_number` in file order."""
    try:
        if path.name.endswith(".parquet"):
            frame = pl.read_parquet(path)
            frame = frame.with_columns(pl.all().cast(pl.String))
        else:
            frame = pl.read_csv(
                path,
                infer_schema=False,
                separator="\t" if path.suffix == ".tsv" else ",",
                encoding="utf8-lossy",
            )
    except Exception as exc:  # noqa: BLE001 - any reader failure is reported as an unreadable file
        raise InputError(f"{path}: the file cannot be read ({exc.__class__.__name__}: {exc}). "
                         "Check that it is a valid CSV with a header row or a Parquet file.") from exc
    renamed = [normalise_column_name(c) for c in frame.columns]
    duplicated = sorted({c for c in renamed if renamed.count(c) > 1})
    if duplicated:
        raise InputError(f"{path}: column(s) {duplicated} appear more than once after normalising names "
                         "(case, spaces and punctuation are ignored); rename one of them")
    frame.columns = renamed
    return frame.with_row_index("_row_number", offset=1).with_columns(pl.col("_row_number").cast(pl.Int64))


def check_required_columns(frame: pl.DataFrame, spec: TableSpec, path: Path) -> None:
    missing = [c for c in spec.required if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: required column(s) {missing} are missing; found {frame.columns[1:]}. "
                         f"The {spec.name} file needs {list(spec.required)}.")


def check_unique_key(frame: pl.DataFrame, spec: TableSpec, path: Path) -> None:
    if spec.key is None or spec.key not in frame.columns:
        return
    key = pl.col(spec.key).str.strip_chars()
    dupes = (
        frame.filter(key.is_not_null() & (key != ""))
        .group_by(key.alias("key"))
        .agg(pl.col("_row_number").sort().alias("rows"), pl.len().alias("n"))
        .filter(pl.col("n") > 1)
        .sort("n", "key", descending=[True, False])
    )
    if dupes.height:
        examples = "; ".join(
            f"'{r['key']}' on rows {r['rows'][:MAX_ROWS_IN_MESSAGE]}"
            for r in dupes.head(MAX_ROWS_IN_MESSAGE).iter_rows(named=True)
        )
        raise InputError(f"{path}: column '{spec.key}' must be unique but {dupes.height} value(s) repeat: "
                         f"{examples}. Remove the duplicates or give them distinct ids.")


def conform_to_contract(frame: pl.DataFrame | None, spec: TableSpec, source_file: str | None) -> pl.DataFrame:
    """Every contract column as text (null when absent), then `_row_number` and `_source_file`."""
    if frame is None:
        columns = {c: pl.Series(c, [], dtype=pl.String) for c in spec.columns}
        columns["_row_number"] = pl.Series("_row_number", [], dtype=pl.Int64)
        columns["_source_file"] = pl.Series("_source_file", [], dtype=pl.String)
        return pl.DataFrame(columns)
    selected = [
        pl.col(c) if c in frame.columns else pl.lit(None, dtype=pl.String).alias(c) for c in spec.columns
    ]
    return frame.select(*selected, "_row_number", pl.lit(source_file, dtype=pl.String).alias("_source_file"))


def account_attributes(frame: pl.DataFrame | None, spec: TableSpec) -> pl.DataFrame:
    """Columns outside the contract on the accounts file, as long (account_id, attribute, value) rows."""
    empty = pl.DataFrame(
        {"account_id": [], "attribute": [], "value": [], "_row_number": []},
        schema={"account_id": pl.String, "attribute": pl.String, "value": pl.String, "_row_number": pl.Int64},
    )
    if frame is None:
        return empty
    extras = [c for c in frame.columns if c not in spec.columns and c != "_row_number"]
    if not extras:
        return empty
    return (
        frame.select("account_id", "_row_number", *extras)
        .unpivot(index=["account_id", "_row_number"], on=extras, variable_name="attribute", value_name="value")
        .select("account_id", "attribute", "value", "_row_number")
    )


def read_export(input_dir: str | Path) -> tuple[dict[str, pl.DataFrame], LoadResult]:
    """Read and validate every contract table of an export folder; raise InputError on fatal problems."""
    folder = Path(input_dir)
    if not folder.is_dir():
        raise InputError(f"input folder {folder} does not exist; pass --input with a CRM export folder")
    frames: dict[str, pl.DataFrame] = {}
    loads: dict[str, TableLoad] = {}
    notes: list[str] = []
    raw_accounts: pl.DataFrame | None = None
    for spec in TABLES:
        path = find_table_file(folder, spec.name)
        if path is None:
            if spec.required_file:
                raise InputError(f"{folder}: required file '{spec.name}.csv' (or .parquet) is missing; "
                                 f"it needs the columns {list(spec.required)}")
            notes.append(f"no {spec.name} file: features that need it are switched off")
            frames[spec.name] = conform_to_contract(None, spec, None)
            loads[spec.name] = TableLoad(spec.name, None, 0)
            continue
        frame = read_table_file(path)
        check_required_columns(frame, spec, path)
        check_unique_key(frame, spec, path)
        if spec.name == "accounts":
            raw_accounts = frame
        extras = [c for c in frame.columns if c not in spec.columns and c != "_row_number"]
        if extras and spec.name != "accounts":
            notes.append(f"{path.name}: columns {extras} are not in the contract and are ignored")
        frames[spec.name] = conform_to_contract(frame, spec, path.name)
        loads[spec.name] = TableLoad(spec.name, path.name, frame.height, extras)
    frames["account_attributes"] = account_attributes(raw_accounts, TABLES[0])
    return frames, LoadResult(str(folder), loads, notes)


def write_raw_tables(frames: dict[str, pl.DataFrame], result: LoadResult, warehouse: str | Path) -> None:
    """Replace the raw schema in one transaction; the connection is closed before returning."""
    Path(warehouse).parent.mkdir(parents=True, exist_ok=True)
    manifest = pl.DataFrame(
        {
            "table_name": [t.table for t in result.tables.values()],
            "source_file": [t.source_file for t in result.tables.values()],
            "present": [t.source_file is not None for t in result.tables.values()],
            "input_rows": [t.input_rows for t in result.tables.values()],
        },
        schema={"table_name": pl.String, "source_file": pl.String, "present": pl.Boolean, "input_rows": pl.Int64},
    )
    with duckdb.connect(str(warehouse)) as con:
        con.execute(f"create schema if not exists {RAW_SCHEMA}")
        con.execute("begin transaction")
        for name, frame in {**frames, "load_manifest": manifest}.items():
            con.register("incoming", frame.to_arrow())
            con.execute(f"create or replace table {RAW_SCHEMA}.{name} as select * from incoming")
            con.unregister("incoming")
        con.execute("commit")


def load_export(input_dir: str | Path, warehouse: str | Path) -> LoadResult:
    """Validate an export folder and write it to the raw schema of the warehouse."""
    frames, result = read_export(input_dir)
    write_raw_tables(frames, result, warehouse)
    return result
