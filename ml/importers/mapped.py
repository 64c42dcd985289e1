"""Importer for any CSV: a column map (`account_id=RANK,latitude=LATITUDE,...`) turns one file into one
contract table, so a team's own export needs no code (`territory import mapped FILE --table accounts`)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from ml.contract import TABLES_BY_NAME
from ml.importers._source import SourceError, count, quote_ident, quote_str, write_outputs
from ml.ingest import normalise_column_name

KIND = "mapped"
# Unmapped source columns that would read as a mapped contract column get this prefix, so ingest never
# sees two columns with one name.
CLASH_PREFIX = "source_"
# `--map account_id=City+State` builds a key from several source columns, joined with this separator.
KEY_PART_SEPARATOR = " / "


def parse_mapping(text: str) -> dict[str, str]:
    """`contract=SOURCE,contract=SOURCE` -> {contract: SOURCE}; refuses malformed or repeated entries."""
    mapping: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        target, sep, source = entry.partition("=")
        if not sep or not target.strip() or not source.strip():
            raise SourceError(f"--map entry {entry!r} must read contract_column=SOURCE_COLUMN")
        if target.strip() in mapping:
            raise SourceError(f"--map names contract column {target.strip()!r} twice")
        mapping[target.strip()] = source.strip()
    return mapping


def import_mapped(src: str | Path, table: str, mapping: dict[str, str], out: str | Path) -> dict:
    """Write `src` as the contract table `table` in `out`: mapped columns under their contract names,
    every other source column kept under its own name (for accounts, an extra fit attribute)."""
    path = Path(src)
    spec = TABLES_BY_NAME.get(table)
    if spec is None:
        raise SourceError(f"unknown contract table {table!r}; known: {', '.join(sorted(TABLES_BY_NAME))}")
    unknown = sorted(set(mapping) - set(spec.columns))
    if unknown:
        raise SourceError(
            f"--map targets {unknown} are not columns of {table}; its columns: {', '.join(spec.columns)}"
        )
    if not path.is_file():
        raise SourceError(f"source file {path} does not exist")
    con = duckdb.connect()
    source = f"read_csv({quote_str(str(path))}, header = true, all_varchar = true)"
    try:
        found = [d[0] for d in con.execute(f"select * from {source} limit 0").description]
    except duckdb.Error as exc:
        raise SourceError(f"source file {path} cannot be read as CSV: {exc}") from exc
    parts = {target: _source_parts(source, found) for target, source in mapping.items()}
    missing = sorted({part for columns in parts.values() for part in columns} - set(found))
    if missing:
        raise SourceError(f"source file {path} has no column(s) {missing} (found: {', '.join(found)})")
    mapped_names = {normalise_column_name(target) for target in mapping}
    present = {normalise_column_name(c) for c in found if c not in mapping.values()}
    unmet = [c for c in spec.required if c not in mapping and c not in present]
    if unmet:
        raise SourceError(
            f"table {table} needs column(s) {unmet}: map them with --map {unmet[0]}=SOURCE_COLUMN"
        )
    select = [f"{_source_sql(parts[t])} as {quote_ident(t)}" for t in mapping]
    kept, renamed = [], []
    for column in found:
        if column in mapping.values():
            continue
        name = normalise_column_name(column)
        if name in mapped_names:
            renamed.append(column)
            name = CLASH_PREFIX + name
        kept.append(column)
        select.append(f"{quote_ident(column)} as {quote_ident(name)}")
    con.execute(f"create table imported as select {', '.join(select)} from {source}")
    rows = count(con, "select * from imported")
    if spec.key is not None and spec.key in mapping:
        _refuse_repeated_keys(con, path, spec.key, mapping[spec.key])
    written = write_outputs(con, Path(out), {f"{table}.csv": "imported"})
    notes = (
        [f"{len(kept)} unmapped source columns kept under their own names: {', '.join(kept)}"] if kept else []
    )
    as_contract = [c for c in kept if c not in renamed and normalise_column_name(c) in spec.columns]
    if as_contract:
        notes.append(
            "of these, read as the contract's own columns (their names match): "
            + ", ".join(f"{c} -> {normalise_column_name(c)}" for c in as_contract)
        )
    if renamed:
        notes.append(
            f"kept as {CLASH_PREFIX}<name> because a mapped column takes the name: {', '.join(renamed)}"
        )
    return {
        "kind": KIND,
        "source": str(path),
        "out": str(out),
        "rows_read": {path.name: rows},
        "rows_written": written,
        "notes": notes,
    }


def _source_parts(source: str, found: list[str]) -> list[str]:
    """The source columns one mapping entry reads: the column itself, or the parts of `A+B` when no
    column carries that whole name."""
    if source in found or "+" not in source:
        return [source]
    return [part.strip() for part in source.split("+") if part.strip()]


def _source_sql(columns: list[str]) -> str:
    """One column as it is, or several joined into one key (NULL when any part is blank)."""
    return f" || {quote_str(KEY_PART_SEPARATOR)} || ".join(
        f"nullif(trim({quote_ident(c)}), '')" if len(columns) > 1 else quote_ident(c) for c in columns
    )


def _refuse_repeated_keys(con: duckdb.DuckDBPyConnection, path: Path, key: str, source: str) -> None:
    """A key that repeats would stop the pipeline's ingest: say so now, with examples and the way out."""
    repeated = con.execute(f"""
        select {quote_ident(key)}, count(*) as n, count(*) over () as total from imported
        where {quote_ident(key)} is not null
        group by all having count(*) > 1 order by n desc, 1 limit 3
    """).fetchall()
    if not repeated:
        return
    total = repeated[0][2]
    examples = ", ".join(f"{value!r} ({n} rows)" for value, n, _ in repeated)
    raise SourceError(
        f"source file {path}: column {source!r}, mapped to {key}, repeats {total:,} value(s), e.g. {examples}; "
        f"map a column that is unique per row, or combine columns into one key: --map {key}=COLUMN_A+COLUMN_B"
    )
