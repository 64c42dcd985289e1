"""Load one CRM export folder (CSV or Parquet) into the warehouse's raw schema, refusing what cannot be read.

Every contract column lands as text, with the file's row number, so that typing and row-level rejects
happen in dbt where analysts can read them. Problems that make the whole file untrustworthy (a missing
required file or column, an unreadable file, duplicate ids) stop the load here with a message naming the
file, the column and the rows.
"""

from __future__ import annotations

import re
import tempfile
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


def stage_csv_as_parquet(path: Path, staging_dir: Path) -> Path:
    """Stream a CSV into Parquet with a 1-based `_row_number`, so DuckDB reads it in bounded memory."""
    target = staging_dir / f"{path.name}.parquet"
    try:
        (
            pl.scan_csv(path, infer_schema=False, separator="\t" if path.suffix == ".tsv" else ",",
                        encoding="utf8-lossy")
            .with_row_index("_row_number", offset=1)
            .sink_parquet(target)
        )
    except Exception as exc:
        raise InputError(f"{path}: the file cannot be read ({exc.__class__.__name__}: {exc}). "
                         "Check that it is a valid CSV with a header row.") from exc
    return target


def source_columns(con: duckdb.DuckDBPyConnection, parquet: Path, path: Path) -> dict[str, str]:
    """Normalised column name -> the file's own column name; refuses names that collide."""
    try:
        described = con.execute(f"describe select * from read_parquet('{parquet}')").fetchall()
    except duckdb.Error as exc:
        raise InputError(f"{path}: the file cannot be read ({exc}). "
                         "Check that it is a valid CSV with a header row or a Parquet file.") from exc
    mapping: dict[str, str] = {}
    for name, *_ in described:
        if name == "_row_number" and not path.name.endswith(".parquet"):
            continue
        normalised = normalise_column_name(name)
        if normalised in mapping:
            raise InputError(f"{path}: columns '{mapping[normalised]}' and '{name}' are the same after normalising "
                             "names (case, spaces and punctuation are ignored); rename one of them")
        mapping[normalised] = name
    return mapping


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def check_required_columns(columns: dict[str, str], spec: TableSpec, path: Path) -> None:
    missing = [c for c in spec.required if c not in columns]
    if missing:
        raise InputError(f"{path}: required column(s) {missing} are missing; found {list(columns.values())}. "
                         f"The {spec.name} file needs {list(spec.required)}.")


def check_unique_key(con: duckdb.DuckDBPyConnection, table: str, spec: TableSpec, path: Path) -> None:
    if spec.key is None:
        return
    dupes = con.execute(f"""
        select key, n, rows from (
            select trim({spec.key}) as key, count(*) as n, list(_row_number order by _row_number) as rows
            from {table} where nullif(trim({spec.key}), '') is not null group by 1
        ) where n > 1 order by n desc, key
    """).fetchall()
    if dupes:
        examples = "; ".join(f"'{key}' on rows {rows[:MAX_ROWS_IN_MESSAGE]}" for key, _, rows in
                             dupes[:MAX_ROWS_IN_MESSAGE])
        raise InputError(f"{path}: column '{spec.key}' must be unique but {len(dupes)} value(s) repeat: "
                         f"{examples}. Remove the duplicates or give them distinct ids.")


def create_raw_table(con: duckdb.DuckDBPyConnection, spec: TableSpec, path: Path | None,
                     staging_dir: Path) -> TableLoad:
    """Create raw.<table> with every contract column as text; an absent file gives an empty table."""
    table = f"{RAW_SCHEMA}.{spec.name}"
    if path is None:
        columns = ", ".join(f"null::varchar as {c}" for c in spec.columns)
        con.execute(f"create or replace table {table} as select {columns}, null::bigint as _row_number, "
                    "null::varchar as _source_file limit 0")
        return TableLoad(spec.name, None, 0)
    is_parquet = path.name.endswith(".parquet")
    parquet = path if is_parquet else stage_csv_as_parquet(path, staging_dir)
    columns = source_columns(con, parquet, path)
    check_required_columns(columns, spec, path)
    selected = [
        f"cast({_quote(columns[c])} as varchar) as {c}" if c in columns else f"null::varchar as {c}"
        for c in spec.columns
    ]
    row_number = "file_row_number + 1" if is_parquet else "_row_number"
    extras = [c for c in columns if c not in spec.columns]
    extra_select = "".join(f", cast({_quote(columns[c])} as varchar) as {_quote('extra__' + c)}" for c in extras)
    file_name = path.name.replace("'", "''")
    try:
        con.execute(f"""
            create or replace table {table} as
            select {', '.join(selected)}, cast({row_number} as bigint) as _row_number,
                   '{file_name}' as _source_file {extra_select}
            from read_parquet('{parquet}', file_row_number = true)
        """)
    except duckdb.Error as exc:
        raise InputError(f"{path}: the file cannot be read ({exc}).") from exc
    check_unique_key(con, table, spec, path)
    return TableLoad(spec.name, path.name, con.execute(f"select count(*) from {table}").fetchall()[0][0], extras)


def split_account_attributes(con: duckdb.DuckDBPyConnection, extras: list[str]) -> None:
    """Move extra account columns into long (account_id, attribute, value) rows, out of raw.accounts."""
    target = f"{RAW_SCHEMA}.account_attributes"
    if not extras:
        con.execute(f"create or replace table {target} (account_id varchar, attribute varchar, value varchar, "
                    "_row_number bigint)")
        return
    parts = [
        f"select account_id, '{c}' as attribute, {_quote('extra__' + c)} as value, _row_number "
        f"from {RAW_SCHEMA}.accounts"
        for c in extras
    ]
    con.execute(f"create or replace table {target} as {' union all '.join(parts)} order by _row_number, attribute")
    for c in extras:
        con.execute(f"alter table {RAW_SCHEMA}.accounts drop column {_quote('extra__' + c)}")


def write_manifest(con: duckdb.DuckDBPyConnection, loads: dict[str, TableLoad]) -> None:
    con.execute(f"create or replace table {RAW_SCHEMA}.load_manifest (table_name varchar, source_file varchar, "
                "present boolean, input_rows bigint)")
    con.executemany(
        f"insert into {RAW_SCHEMA}.load_manifest values (?, ?, ?, ?)",
        [(t.table, t.source_file, t.source_file is not None, t.input_rows) for t in loads.values()],
    )


def load_export(input_dir: str | Path, warehouse: str | Path) -> LoadResult:
    """Validate an export folder and replace the raw schema in one transaction (all or nothing)."""
    folder = Path(input_dir)
    if not folder.is_dir():
        raise InputError(f"input folder {folder} does not exist; pass --input with a CRM export folder")
    paths = {spec.name: find_table_file(folder, spec.name) for spec in TABLES}
    for spec in TABLES:
        if spec.required_file and paths[spec.name] is None:
            hint = ""
            if spec.name in ("opportunities", "reps") and paths["accounts"] is not None:
                hint = (" (territory run learns scores from won/lost opportunities and assigns accounts to the "
                        "reps file's reps; to plan an accounts-only export, run benchmarks/territories.py "
                        "--input DIR --potential-column COLUMN --reps K, which places K reps where the "
                        "accounts are densest)")
            raise InputError(f"{folder}: required file '{spec.name}.csv' (or .parquet) is missing; "
                             f"it needs the columns {list(spec.required)}{hint}")
    Path(warehouse).parent.mkdir(parents=True, exist_ok=True)
    loads: dict[str, TableLoad] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="territory-ingest-") as staging, duckdb.connect(str(warehouse)) as con:
        con.execute(f"create schema if not exists {RAW_SCHEMA}")
        con.execute("begin transaction")
        try:
            for spec in TABLES:
                load = create_raw_table(con, spec, paths[spec.name], Path(staging))
                loads[spec.name] = load
                if load.source_file is None:
                    notes.append(f"no {spec.name} file: features that need it are switched off")
                elif load.extra_columns and spec.name != "accounts":
                    notes.append(f"{load.source_file}: columns {load.extra_columns} are not in the contract "
                                 "and are ignored")
            split_account_attributes(con, loads["accounts"].extra_columns)
            write_manifest(con, loads)
        except BaseException:
            con.execute("rollback")
            raise
        con.execute("commit")
    return LoadResult(str(folder), loads, notes)
