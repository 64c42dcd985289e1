"""Shared plumbing for the importers: reading a source folder strictly, id slugs, writing contract CSVs."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import duckdb

from ml.contract import TABLES
from ml.ingest import SUPPORTED_SUFFIXES

_READ_OPTIONS = "header = true, all_varchar = true, delim = ',', quote = '\"'"


class SourceError(ValueError):
    """A source folder that cannot be imported: missing file or column, unreadable CSV, ambiguous key."""


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def slug_sql(expr: str) -> str:
    """SQL turning a name into a stable id (`Gekko & Co` -> `gekko-co`); NULL for a blank name."""
    return (
        f"nullif(trim(regexp_replace(lower(strip_accents(trim({expr}))), '[^a-z0-9]+', '-', 'g'), '-'), '')"
    )


def replace_sql(expr: str, fixes: Mapping[str, str]) -> str:
    """SQL mapping the exact values in `fixes` to their correction and leaving every other value alone."""
    whens = " ".join(f"when {quote_str(bad)} then {quote_str(good)}" for bad, good in fixes.items())
    return f"case {expr} {whens} else {expr} end"


def read_source(
    con: duckdb.DuckDBPyConnection, folder: Path, file: str, columns: Sequence[str], table: str
) -> int:
    """Load the named columns of `folder/file` into `table` as trimmed text (blank -> NULL); return its rows.

    Everything is read as text so that no value is altered by type sniffing (ids with leading zeros,
    US dates); each importer converts what it needs explicitly.
    """
    path = folder / file
    if not path.is_file():
        raise SourceError(f"missing source file {file} in {folder} (it must have columns: {', '.join(columns)})")
    source = f"read_csv({quote_str(str(path))}, {_READ_OPTIONS})"
    try:
        found = [d[0] for d in con.execute(f"select * from {source} limit 0").description]
        missing = [c for c in columns if c not in found]
        if missing:
            raise SourceError(
                f"source file {file} is missing column(s) {', '.join(missing)} "
                f"(found: {', '.join(found)}; path {path})"
            )
        select = ", ".join(f"nullif(trim({quote_ident(c)}), '') as {quote_ident(c)}" for c in columns)
        con.execute(f"create table {table} as select {select} from {source}")
    except duckdb.Error as exc:
        raise SourceError(f"source file {file} cannot be read as CSV ({path}): {exc}") from exc
    return count(con, f"select * from {table}")


def count(con: duckdb.DuckDBPyConnection, query: str) -> int:
    return con.execute(f"select count(*) from ({query})").fetchone()[0]


def require_unique(
    con: duckdb.DuckDBPyConnection, table: str, file: str, column: str, key_sql: str | None = None
) -> None:
    """Fail when two rows of `file` give the same key, or a non-blank value gives an empty key.

    A duplicate would either repeat a contract id (fatal in the pipeline's ingest) or multiply rows
    in a lookup join, so it is refused here with the offending values named.
    """
    key = key_sql or quote_ident(column)
    col = quote_ident(column)
    clashes = con.execute(
        f"select {key} as k, list({col} order by {col}) from {table} where {col} is not null "
        "group by k having count(*) > 1 or k is null order by k nulls first limit 5"
    ).fetchall()
    if clashes:
        shown = "; ".join(f"{k if k is not None else '(empty id)'}: {', '.join(v)}" for k, v in clashes)
        raise SourceError(f"source file {file}: column {column} must identify one row each, but {shown}")


def prepare_out(out: Path, files: Iterable[str]) -> None:
    """Create `out`, refusing a folder that holds other contract files the pipeline would read with ours."""
    out.mkdir(parents=True, exist_ok=True)
    ours = set(files)
    stale = sorted(
        name
        for table in TABLES
        for name in (f"{table.name}{suffix}" for suffix in SUPPORTED_SUFFIXES)
        if name not in ours and (out / name).exists()
    )
    if stale:
        raise SourceError(
            f"output folder {out} already holds {', '.join(stale)}, which this import does not write; "
            "the pipeline would mix them with the imported files: remove them or choose another folder"
        )


def write_outputs(con: duckdb.DuckDBPyConnection, out: Path, tables: Mapping[str, str]) -> dict[str, int]:
    """Write each `file name -> table` to `out` and return rows written per file.

    Files are written under a temporary name and renamed only after all of them succeeded, so a
    failure never leaves a half-imported folder.
    """
    prepare_out(out, tables)
    written: dict[str, int] = {}
    staged: list[tuple[Path, Path]] = []
    try:
        for file, table in tables.items():
            tmp = out / f".{file}.tmp"
            staged.append((tmp, out / file))
            con.execute(f"copy (select * from {table}) to {quote_str(str(tmp))} (header, delimiter ',')")
            written[file] = count(con, f"select * from {table}")
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, final in staged:
        os.replace(tmp, final)
    return written
