"""Importer for the Olist B2B marketing funnel (MQLs, closed deals, sellers) -> input contract."""

from __future__ import annotations

from pathlib import Path

import duckdb

from ml.importers._source import count, read_source, require_unique, write_outputs

KIND = "olist-funnel"

MQL_FILE = "olist_marketing_qualified_leads_dataset.csv"
DEALS_FILE = "olist_closed_deals_dataset.csv"
SELLERS_FILE = "olist_sellers_dataset.csv"

# Only these columns are read. The other closed-deal columns (business_segment, lead_type,
# lead_behaviour_profile, has_company, declared_* ...) exist only for won leads: loading them at all
# would invite putting them on accounts, where they would give the outcome away.
SOURCES: dict[str, tuple[str, tuple[str, ...]]] = {
    MQL_FILE: ("src_mql", ("mql_id", "first_contact_date", "landing_page_id", "origin")),
    DEALS_FILE: ("src_deals", ("mql_id", "seller_id", "sdr_id", "sr_id", "won_date", "declared_monthly_revenue")),
    SELLERS_FILE: ("src_sellers", ("seller_id", "seller_state")),
}

# A blank origin is a different fact from the source's own `unknown` label, so it keeps its own value.
BLANK_ORIGIN = "missing"


def _build(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"""
        create table accounts as
        select mql_id as account_id, first_contact_date as created_at,
               coalesce(origin, '{BLANK_ORIGIN}') as origin, landing_page_id
        from src_mql
        order by account_id
    """)
    # A full join keeps a closed deal whose MQL row is missing: it is written, and the pipeline
    # rejects it as an unknown account instead of it vanishing here.
    con.execute("""
        create table opportunities as
        select
            coalesce(m.mql_id, d.mql_id) as opportunity_id,
            coalesce(m.mql_id, d.mql_id) as account_id,
            case when d.mql_id is not null then 'won' else 'lost' end as stage,
            m.first_contact_date as created_at,
            case
                when d.mql_id is null then null
                -- One deal is won before its first contact; the outcome stands, the cycle cannot be negative.
                when try_cast(d.won_date as timestamp) < try_cast(m.first_contact_date as date)
                    then strftime(try_cast(m.first_contact_date as date), '%Y-%m-%d %H:%M:%S')
                else d.won_date
            end as closed_at,
            -- declared_monthly_revenue 0 means "not declared".
            case when try_cast(d.declared_monthly_revenue as double) > 0
                 then d.declared_monthly_revenue end as amount
        from src_mql m
        full join src_deals d on m.mql_id = d.mql_id
        order by opportunity_id
    """)
    con.execute("""
        create table rep_deals as
        select sdr_id as rep_id, 'SDR' as role, mql_id, seller_id from src_deals where sdr_id is not null
        union all
        select sr_id, 'AE', mql_id, seller_id from src_deals where sr_id is not null
    """)
    # Ties on the state count go to the alphabetically first state so reruns agree.
    con.execute("""
        create table rep_regions as
        select rep_id, seller_state as region from (
            select d.rep_id, s.seller_state, count(*) as n
            from (select distinct rep_id, mql_id, seller_id from rep_deals) d
            join src_sellers s using (seller_id)
            where s.seller_state is not null
            group by all)
        qualify row_number() over (partition by rep_id order by n desc, seller_state) = 1
    """)
    # Some ids work deals both as SDR and as SR, but rep_id is the reps key: one row per person,
    # with the role of most of their deals (a tie goes to AE, the scarcer closing seat).
    con.execute("""
        create table reps as
        select r.rep_id,
               case when r.ae_deals >= r.sdr_deals then 'AE' else 'SDR' end as role,
               g.region
        from (select rep_id,
                     count(*) filter (where role = 'SDR') as sdr_deals,
                     count(*) filter (where role = 'AE') as ae_deals
              from rep_deals group by rep_id) r
        left join rep_regions g using (rep_id)
        order by r.rep_id
    """)


def _notes(con: duckdb.DuckDBPyConnection) -> list[str]:
    def n(query: str) -> int:
        return count(con, query)

    notes: list[str] = []
    stages = dict(con.execute("select stage, count(*) from opportunities group by 1").fetchall())
    notes.append(f"{n('select 1 from src_mql'):,} MQLs -> one account and one opportunity each: "
                 f"{stages.get('won', 0):,} won (in {DEALS_FILE}), {stages.get('lost', 0):,} lost "
                 "(never closed: a lost outcome)")
    notes.append("closed-deal attributes (business_segment, lead_type, lead_behaviour_profile, has_company, "
                 "declared_monthly_revenue ...) and seller geography are not put on accounts: they exist "
                 "only for won leads and would give the outcome away")
    if blank_ids := n("select 1 from src_mql where mql_id is null"):
        notes.append(f"{blank_ids:,} MQLs have no mql_id: written with empty ids, which the pipeline "
                     "rejects with a reason")
    if orphans := n("select 1 from src_deals where mql_id is null "
                    "or mql_id not in (select mql_id from src_mql where mql_id is not null)"):
        notes.append(f"{orphans:,} closed deals have no MQL row: written as won opportunities without an "
                     "account, which the pipeline rejects as an unknown account")
    if blank_origin := n("select 1 from src_mql where origin is null"):
        unknown = n("select 1 from src_mql where origin = 'unknown'")
        notes.append(f"{blank_origin:,} blank origins written as '{BLANK_ORIGIN}', kept apart from the "
                     f"{unknown:,} the source itself labels 'unknown'")

    shifted = dict(con.execute("""select strftime(try_cast(won_date as timestamp), '%H:%M:%S'), count(*)
                                  from src_deals
                                  where strftime(try_cast(won_date as timestamp), '%H:%M:%S')
                                        in ('02:00:00', '03:00:00')
                                  group by 1""").fetchall())
    if shifted:
        notes.append(f"{sum(shifted.values()):,} won_date values are exactly 03:00:00 "
                     f"({shifted.get('03:00:00', 0):,}) or 02:00:00 ({shifted.get('02:00:00', 0):,}): "
                     "local midnight stored in UTC (Brazil is UTC-3, UTC-2 in summer time); kept as "
                     "written, their date is right")
    early = [i for (i,) in con.execute("""select d.mql_id from src_deals d join src_mql m using (mql_id)
                                          where try_cast(d.won_date as timestamp)
                                                < try_cast(m.first_contact_date as date)
                                          order by 1""").fetchall()]
    if early:
        notes.append(f"{len(early):,} deal(s) won before first contact ({', '.join(early)}): closed_at set "
                     "to first_contact_date so the cycle is not negative; the won outcome is kept")
    if bad_won := n("select 1 from src_deals where won_date is not null "
                    "and try_cast(won_date as timestamp) is null"):
        notes.append(f"{bad_won:,} won_date values are not timestamps: passed through unchanged so the "
                     "pipeline rejects those rows with a reason")
    if no_won := n("select 1 from src_deals where won_date is null"):
        notes.append(f"{no_won:,} closed deals have no won_date: closed_at left blank")

    declared, zero, largest = con.execute("""
        select count(*) filter (where try_cast(declared_monthly_revenue as double) > 0),
               count(*) filter (where try_cast(declared_monthly_revenue as double) = 0
                                   or declared_monthly_revenue is null),
               max(try_cast(declared_monthly_revenue as double))
        from src_deals""").fetchone()
    notes.append(f"amount = declared_monthly_revenue on {declared:,} won deals (largest {largest or 0:,.0f}, "
                 f"kept as declared); {zero:,} declare 0 or nothing (missing) and lost opportunities "
                 "have none: amount left blank")

    sdr, sr, both = con.execute("""
        select count(distinct rep_id) filter (where role = 'SDR'),
               count(distinct rep_id) filter (where role = 'AE'),
               (select count(*) from (select sdr_id from src_deals intersect select sr_id from src_deals))
        from rep_deals""").fetchone()
    roles = dict(con.execute("select role, count(*) from reps group by 1").fetchall())
    notes.append(f"reps: {sdr:,} distinct sdr_id and {sr:,} distinct sr_id, {both:,} ids in both roles; "
                 f"one rep per id (rep_id is the key) with the role of most of their deals, ties to AE: "
                 f"{roles.get('SDR', 0):,} SDR + {roles.get('AE', 0):,} AE = {n('select 1 from reps'):,} reps")
    if unattributed := n("select 1 from src_deals where sdr_id is null or sr_id is null"):
        notes.append(f"{unattributed:,} closed deals lack an sdr_id or sr_id: not attributed to that rep")
    joined = n("select 1 from src_deals d join src_sellers s using (seller_id)")
    no_region = n("select 1 from reps where region is null")
    notes.append(f"rep region = most frequent seller_state over the rep's deals that join to {SELLERS_FILE} "
                 f"({joined:,} of {n('select 1 from src_deals'):,} deals join); {no_region:,} reps have no "
                 "joined deal: region blank")
    notes.append(f"{SELLERS_FILE} rows are used only for rep regions and become no contract rows")
    notes.append("owner_rep_id left blank: only won leads have an SR, so an owner would mark exactly the "
                 "won accounts")
    return notes


def import_olist_funnel(src: str | Path, out: str | Path) -> dict:
    """Turn the Olist marketing-funnel folder `src` into contract CSVs in `out`; return the import summary."""
    src, out = Path(src), Path(out)
    with duckdb.connect() as con:
        rows_read = {file: read_source(con, src, file, columns, table)
                     for file, (table, columns) in SOURCES.items()}
        require_unique(con, "src_mql", MQL_FILE, "mql_id")
        require_unique(con, "src_deals", DEALS_FILE, "mql_id")
        require_unique(con, "src_sellers", SELLERS_FILE, "seller_id")
        _build(con)
        notes = _notes(con)
        rows_written = write_outputs(con, out, {
            "accounts.csv": "accounts", "opportunities.csv": "opportunities", "reps.csv": "reps",
        })
    return {"kind": KIND, "source": str(src), "out": str(out),
            "rows_read": rows_read, "rows_written": rows_written, "notes": notes}
