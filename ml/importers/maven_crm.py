"""Importer for the Maven Analytics "CRM Sales Opportunities" export: pipeline report -> input contract."""

from __future__ import annotations

from pathlib import Path

import duckdb

from ml.importers._source import (
    count,
    read_source,
    replace_sql,
    require_unique,
    slug_sql,
    write_outputs,
)

KIND = "maven-crm"

# source file -> (table it is loaded into, columns the import needs)
SOURCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "accounts.csv": (
        "src_accounts",
        ("account", "sector", "year_established", "revenue", "employees", "office_location", "subsidiary_of"),
    ),
    "products.csv": ("src_products", ("product", "sales_price")),
    "sales_teams.csv": ("src_teams", ("sales_agent", "manager", "regional_office")),
    "sales_pipeline.csv": (
        "src_pipeline",
        ("opportunity_id", "sales_agent", "product", "account", "deal_stage", "engage_date", "close_date",
         "close_value"),
    ),
}

# Known misspellings in the export; exact values, so a new typo shows up as its own category.
SECTOR_FIXES = {"technolgy": "technology"}
COUNTRY_FIXES = {"Philipines": "Philippines"}

# The export writes revenue in millions; the contract wants currency units.
REVENUE_UNIT = 1_000_000
US_DATE = "%m/%d/%Y"


def _iso_date(col: str) -> str:
    # An unparseable date is passed through unchanged so the pipeline rejects the row with a reason.
    return f"coalesce(strftime(try_strptime({col}, '{US_DATE}'), '%Y-%m-%d'), {col})"


def _product_key(col: str) -> str:
    # The pipeline writes `GTXPro` where products.csv has `GTX Pro`: compare without spaces or case.
    return f"regexp_replace(lower({col}), '\\s+', '', 'g')"


def _build(con: duckdb.DuckDBPyConnection) -> None:
    won_with_value = "lower(p.deal_stage) = 'won' and try_cast(p.close_value as double) > 0"
    con.execute(f"""
        create table opportunities as
        select
            p.opportunity_id,
            {slug_sql('p.account')} as account_id,
            p.deal_stage as stage,
            {_iso_date('p.engage_date')} as created_at,
            {_iso_date('p.close_date')} as closed_at,
            -- Lost deals record close_value 0 and open deals none: the list price is the expected size.
            case when {won_with_value} then p.close_value else pr.sales_price end as amount,
            case when {won_with_value} then 'close_value'
                 when pr.sales_price is not null then 'list_price' end as amount_source,
            coalesce(pr.product, p.product) as product
        from src_pipeline p
        left join src_products pr on {_product_key('p.product')} = {_product_key('pr.product')}
        order by p.opportunity_id
    """)
    con.execute(f"""
        create table agent_load as
        select {slug_sql('account')} as account_id, {slug_sql('sales_agent')} as rep_id, count(*) as n,
               max(try_strptime(engage_date, '{US_DATE}')) as last_engaged
        from src_pipeline
        where account is not null and sales_agent is not null
        group by all
    """)
    # Ties on opportunity count go to the agent who engaged the account most recently (the current
    # relationship), then to the smaller rep_id, so reruns always pick the same owner.
    con.execute("""
        create table owners as
        select account_id, rep_id from agent_load
        qualify row_number() over (
            partition by account_id order by n desc, last_engaged desc nulls last, rep_id) = 1
    """)
    con.execute(f"""
        create table accounts as
        select
            {slug_sql('a.account')} as account_id,
            a.account as account_name,
            {replace_sql('a.sector', SECTOR_FIXES)} as industry,
            a.employees,
            coalesce(
                cast(round(try_cast(a.revenue as decimal(38, 6)) * {REVENUE_UNIT}) as bigint)::varchar,
                a.revenue) as annual_revenue,
            {replace_sql('a.office_location', COUNTRY_FIXES)} as country,
            {slug_sql('a.subsidiary_of')} as parent_account_id,
            o.rep_id as owner_rep_id,
            a.year_established
        from src_accounts a
        left join owners o on o.account_id = {slug_sql('a.account')}
        order by account_id
    """)
    con.execute(f"""
        create table reps as
        select {slug_sql('sales_agent')} as rep_id, sales_agent as name, 'AE' as role,
               regional_office as region, {slug_sql('manager')} as manager_id
        from src_teams
        order by rep_id
    """)


def _notes(con: duckdb.DuckDBPyConnection) -> list[str]:
    def n(query: str) -> int:
        return count(con, query)

    notes: list[str] = []
    for column, fixes in (("sector", SECTOR_FIXES), ("office_location", COUNTRY_FIXES)):
        for bad, good in fixes.items():
            if fixed := n(f"select 1 from src_accounts where {column} = '{bad}'"):
                notes.append(f"accounts.csv {column} '{bad}' corrected to '{good}' on {fixed:,} "
                             f"account{'s' if fixed != 1 else ''}")
    if blank := n("select 1 from src_accounts where account is null"):
        notes.append(f"{blank:,} accounts have no name: written with an empty account_id, "
                     "which the pipeline rejects with a reason")
    if bad_revenue := n("select 1 from src_accounts where revenue is not null "
                        "and try_cast(revenue as decimal(38, 6)) is null"):
        notes.append(f"{bad_revenue:,} revenue values are not numbers: passed through unchanged "
                     "so the pipeline rejects those accounts with a reason")
    if orphan_parents := n("""select 1 from accounts c where parent_account_id is not null
                              and parent_account_id not in (select account_id from accounts
                                                            where account_id is not null)"""):
        notes.append(f"{orphan_parents:,} accounts name a parent (subsidiary_of) missing from accounts.csv: "
                     "parent_account_id kept as its slug")

    stages = con.execute("select stage, count(*) from opportunities group by 1 order by 2 desc").fetchall()
    notes.append("stage written as in the source (" + ", ".join(f"{s} {c:,}" for s, c in stages)
                 + "); stages other than Won and Lost are open deals")
    no_account = con.execute("select stage, count(*) from opportunities where account_id is null "
                             "group by 1 order by 2 desc").fetchall()
    if no_account:
        total = sum(c for _, c in no_account)
        by_stage = ", ".join(f"{c:,} {s}" for s, c in no_account)
        notes.append(f"{total:,} opportunities have no account ({by_stage}): written with an empty "
                     "account_id so the pipeline's rejected_rows keeps them with a reason")
    if unknown := n("""select 1 from opportunities where account_id is not null
                       and account_id not in (select account_id from accounts where account_id is not null)"""):
        notes.append(f"{unknown:,} opportunities name an account missing from accounts.csv: written with "
                     "that account's slug, the pipeline rejects them as an unknown account")
    if no_engage := n("select 1 from src_pipeline where engage_date is null"):
        notes.append(f"{no_engage:,} opportunities have no engage_date: created_at left blank")
    if bad_dates := n(f"""select 1 from src_pipeline, unnest([engage_date, close_date]) as d(v)
                          where v is not null and try_strptime(v, '{US_DATE}') is null"""):
        notes.append(f"{bad_dates:,} dates are not M/D/YYYY: passed through unchanged so the pipeline "
                     "rejects those rows with a reason")
    if respelled := n("""select 1 from src_pipeline p join opportunities o using (opportunity_id)
                         where o.amount_source is not null and p.product <> o.product"""):
        spellings = con.execute("""select distinct p.product || ' -> ' || o.product
                                   from src_pipeline p join opportunities o using (opportunity_id)
                                   where o.amount_source is not null and p.product <> o.product
                                   order by 1""").fetchall()
        notes.append(f"{respelled:,} opportunities spell their product differently from products.csv "
                     f"({', '.join(s for (s,) in spellings)}): matched ignoring spaces and case")
    amounts = dict(con.execute("select coalesce(amount_source, 'blank'), count(*) from opportunities "
                               "group by 1").fetchall())
    notes.append(f"amount: {amounts.get('close_value', 0):,} from close_value (Won), "
                 f"{amounts.get('list_price', 0):,} from the product list price (Lost deals record "
                 f"close_value 0 and open deals have none), {amounts.get('blank', 0):,} blank")
    if unpriced := con.execute("""select product, count(*) from opportunities
                                  where amount_source is null group by 1 order by 1""").fetchall():
        notes.append("products missing from products.csv, amount left blank: "
                     + ", ".join(f"{p} ({c:,})" for p, c in unpriced))
    notes.append("products.csv is the list-price lookup: its rows become no contract rows")

    ties = n("""select account_id from agent_load group by account_id
                having count(*) filter (where n = (select max(n) from agent_load m
                                                   where m.account_id = agent_load.account_id)) > 1""")
    notes.append(f"owner_rep_id = the agent with the most opportunities on the account; {ties:,} accounts "
                 "had a tie, broken by the latest engage_date, then rep_id")
    if idle := n(f"""select 1 from reps where rep_id not in (
                        select {slug_sql('sales_agent')} from src_pipeline where sales_agent is not null)"""):
        notes.append(f"{idle:,} of {n('select 1 from reps'):,} sales agents have no opportunities: "
                     "written as reps, they own no account")
    if stray := con.execute("""select distinct sales_agent from src_pipeline where sales_agent is not null
                               and sales_agent not in (select sales_agent from src_teams
                                                       where sales_agent is not null)
                               order by 1""").fetchall():
        notes.append("sales agents in the pipeline but not in sales_teams.csv (an owner_rep_id may name "
                     "them): " + ", ".join(a for (a,) in stray))
    managers = n("""select distinct manager_id from reps where manager_id is not null
                    and manager_id not in (select rep_id from reps where rep_id is not null)""")
    if managers:
        notes.append(f"{managers:,} managers appear only as manager_id (they are not in sales_teams.csv): "
                     "not written as reps")
    return notes


def import_maven_crm(src: str | Path, out: str | Path) -> dict:
    """Turn the Maven CRM folder `src` into contract CSVs in `out`; return the import summary."""
    src, out = Path(src), Path(out)
    with duckdb.connect() as con:
        rows_read = {file: read_source(con, src, file, columns, table)
                     for file, (table, columns) in SOURCES.items()}
        require_unique(con, "src_accounts", "accounts.csv", "account", slug_sql("account"))
        require_unique(con, "src_products", "products.csv", "product", _product_key("product"))
        require_unique(con, "src_teams", "sales_teams.csv", "sales_agent", slug_sql("sales_agent"))
        require_unique(con, "src_pipeline", "sales_pipeline.csv", "opportunity_id")
        _build(con)
        notes = _notes(con)
        rows_written = write_outputs(con, out, {
            "accounts.csv": "accounts", "opportunities.csv": "opportunities", "reps.csv": "reps",
        })
    return {"kind": KIND, "source": str(src), "out": str(out),
            "rows_read": rows_read, "rows_written": rows_written, "notes": notes}
