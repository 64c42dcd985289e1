"""Small helpers the assets share to move DataFrames in and out of DuckDB and into asset metadata."""

from __future__ import annotations

import duckdb
import pandas as pd


def table_exists(con: duckdb.DuckDBPyConnection, name: str, schema: str = "main") -> bool:
    found = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?", [schema, name]
    ).fetchall()[0]
    return bool(found and found[0])


def replace_table(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame) -> None:
    con.register("incoming_frame", frame)
    try:
        con.execute(f"create or replace table {name} as select * from incoming_frame")
    finally:
        con.unregister("incoming_frame")


def append_table(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame) -> None:
    """Append rows (an audit trail); the table is created from the first batch."""
    if not table_exists(con, name):
        replace_table(con, name, frame)
        return
    con.register("incoming_frame", frame)
    try:
        # Writers of one audit trail may carry different columns (a routed lead has a probability, a
        # replanned account does not): the table grows the new ones, older rows keep them NULL.
        existing = {r[0] for r in con.execute(f"describe {name}").fetchall()}
        for column, column_type, *_ in con.execute("describe incoming_frame").fetchall():
            if column not in existing:
                con.execute(f'alter table {name} add column "{column}" {column_type}')
        con.execute(f"insert into {name} by name select * from incoming_frame")
    finally:
        con.unregister("incoming_frame")


def read_frame(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pd.DataFrame:
    return con.execute(sql, params or []).df()


def markdown(frame: pd.DataFrame, max_rows: int = 30, digits: int = 3) -> str:
    """A markdown table for the Dagster UI, without the optional `tabulate` dependency."""
    shown = frame.head(max_rows)
    header = "| " + " | ".join(str(c) for c in shown.columns) + " |"
    rule = "|" + "---|" * len(shown.columns)

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        return str(value).replace("|", "/")

    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    more = [f"\n_{len(frame) - max_rows} more rows_"] if len(frame) > max_rows else []
    return "\n".join([header, rule, *rows, *more])


BALANCE_CRITERIA = ("potential", "workload", "account_count")


def territory_balance(con: duckdb.DuckDBPyConnection) -> dict[str, float]:
    """Largest relative deviation from the mean territory, per balance criterion."""
    deviations = ", ".join(f"max(abs(t.{c} / nullif(m.{c}, 0) - 1))" for c in BALANCE_CRITERIA)
    means = ", ".join(f"avg({c}) as {c}" for c in BALANCE_CRITERIA)
    row = con.execute(f"with m as (select {means} from territories) select {deviations} from territories t, m")
    return {c: float(v or 0.0) for c, v in zip(BALANCE_CRITERIA, row.fetchall()[0], strict=True)}
