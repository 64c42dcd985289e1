"""Synthetic CRM export generator: a folder in the input contract whose outcomes follow a known latent truth.

Every account gets three latent logits: fit (industry, size, a few technologies, ownership), intent (a latent
buying-intent level that drives engagement events, rep activity and the third-party intent score) and persona
(the number of engaged contacts with an ideal-customer-profile title). Each opportunity is won with probability
sigmoid(intercept + fit + intent + persona), so models trained on the export can be checked against the
weights saved in `_truth/truth.json` and the per-account truth in `_truth/account_truth.parquet`; `_truth` is
not part of the contract.

Accounts and reps are generated in one pass; every account-level child table (contacts, events, opportunities,
activities, signals) is generated and appended per chunk of accounts, so a million-account export with tens of
millions of events fits in a few GB. Each chunk draws from its own seeded stream, so output depends only on the
seed and the arguments.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from ml.contract import TABLES
from ml.us_cities import US_CITIES

CHUNK_ACCOUNTS = 100_000
# Share of event and activity rows whose account was deleted from the CRM (they are rejected downstream).
ORPHAN_SHARE = 0.001
DELETED_ACCOUNT_PREFIX = "DELETED-"
HISTORY_DAYS = 365
FILE_FORMATS = ("parquet", "csv")

_DAY_S = 86_400
_US = 1_000_000
_HISTORY_S = HISTORY_DAYS * _DAY_S
_KM_PER_DEGREE = 111.0
_TIMESTAMP = pl.Datetime("us")

# --- latent truth -----------------------------------------------------------------------------------------
# (name, share of accounts, fit effect)
INDUSTRIES: tuple[tuple[str, float, float], ...] = (
    ("Software", 0.16, 0.60),
    ("Financial Services", 0.12, 0.40),
    ("Healthcare", 0.12, 0.10),
    ("Manufacturing", 0.13, -0.10),
    ("Retail", 0.10, -0.30),
    ("Professional Services", 0.10, 0.20),
    ("Telecommunications", 0.05, 0.30),
    ("Education", 0.07, -0.50),
    ("Logistics", 0.08, 0.00),
    ("Energy", 0.07, -0.20),
)
# (name, share of accounts, fit effect)
OWNERSHIP: tuple[tuple[str, float, float], ...] = (
    ("public", 0.18, 0.20),
    ("private", 0.55, 0.00),
    ("pe_backed", 0.15, 0.40),
    ("nonprofit", 0.12, -0.60),
)
# (name, adoption rate at the median company size, fit effect); zero-effect ones are realistic noise.
TECHNOLOGIES: tuple[tuple[str, float, float], ...] = (
    ("Salesforce", 0.35, 0.50),
    ("HubSpot", 0.25, 0.30),
    ("Microsoft Dynamics", 0.12, -0.30),
    ("Snowflake", 0.15, 0.40),
    ("Outreach", 0.10, 0.35),
    ("Databricks", 0.08, 0.00),
    ("AWS", 0.45, 0.00),
    ("Azure", 0.30, 0.00),
    ("Google Cloud", 0.15, 0.00),
    ("Slack", 0.40, 0.00),
    ("Zoom", 0.50, 0.00),
    ("Marketo", 0.10, 0.00),
)
LOG_EMPLOYEES_MEAN = 4.2
LOG_EMPLOYEES_SD = 1.4
FIT_LOG_EMPLOYEES = 0.30
# Larger companies run more of the tracked technologies (logit slope per log-employee).
TECH_SIZE_SLOPE = 0.35
INTENT_WEIGHT = 0.90
PERSONA_WEIGHT = 0.50
INTERCEPT = -2.3
UNTARGETED_SHARE = 0.10
# Untargeted accounts never engaged, so their latent intent is pinned low rather than unobservable noise.
UNTARGETED_INTENT = -1.5

# (title, share of contacts, is an ideal-customer-profile persona)
TITLES: tuple[tuple[str, float, bool], ...] = (
    ("VP of Sales", 0.06, True),
    ("Chief Revenue Officer", 0.03, True),
    ("Director of Sales", 0.06, True),
    ("Head of Revenue Operations", 0.04, True),
    ("Sales Operations Manager", 0.06, True),
    ("Head of Marketing Operations", 0.04, True),
    ("Chief Financial Officer", 0.04, False),
    ("Chief Executive Officer", 0.03, False),
    ("Chief Technology Officer", 0.03, False),
    ("IT Director", 0.06, False),
    ("Software Engineer", 0.12, False),
    ("Data Analyst", 0.08, False),
    ("Procurement Manager", 0.05, False),
    ("Account Executive", 0.08, False),
    ("Marketing Manager", 0.06, False),
    ("HR Manager", 0.05, False),
    ("Customer Success Manager", 0.05, False),
    ("Office Manager", 0.03, False),
    ("Controller", 0.03, False),
)
# Contact engagement logit: a flat base, plus for ICP titles a lift driven by the account's persona latent.
ENGAGE_BASE = -1.0
ENGAGE_ICP_LIFT = 0.8
ENGAGE_ICP_SLOPE = 1.2

# --- observable behaviour ---------------------------------------------------------------------------------
EVENT_TYPES = (
    "web_visit", "pricing_page_view", "content_download", "event_attendance", "email_click", "intent_topic",
)
_WEB_VISIT, _PRICING, _INTENT_TOPIC = 0, 1, 5
# Mix of the non-pricing first-party types (web_visit, content_download, event_attendance, email_click).
_OTHER_TYPES = np.array([0, 2, 3, 4])
_OTHER_TYPE_SHARES = np.array([0.55, 0.15, 0.05, 0.25])
SOURCES = ("first_party", "third_party")
TOPICS: tuple[tuple[str, float], ...] = (
    ("crm software", 0.25),
    ("territory planning", 0.15),
    ("sales forecasting", 0.15),
    ("revenue operations", 0.12),
    ("lead scoring", 0.10),
    ("account based marketing", 0.10),
    ("sales compensation", 0.08),
    ("pipeline management", 0.05),
)
FIRST_PARTY_RATE = 60.0
FIRST_PARTY_SLOPE = 0.8
TOPIC_RATE = 10.0
TOPIC_SLOPE = 0.6
PRICING_BASE = -2.2
PRICING_SLOPE = 0.8
# Recency exponent slope: higher intent concentrates events near as_of.
RECENCY_SLOPE = 0.5
# Engagement history reaches this many days before the first deal of the window.
EVENT_LEAD_DAYS = 180
ANONYMOUS_SHARE = 0.15

OPPORTUNITY_BASE = 0.6
OPPORTUNITY_INTENT = 0.35
# An account with deals has 1 + Binomial(EXTRA_OPPORTUNITIES, EXTRA_OPPORTUNITY_P) of them over the year (new
# business, expansions, renewals): about 2.6 each, so the default export closes ~6,000 deals and its held-out
# windows hold enough outcomes for a 10-bin calibration error to rise above sampling noise.
EXTRA_OPPORTUNITIES = 4
EXTRA_OPPORTUNITY_P = 0.4
CLOSED_SHARE = 0.75
# Stage labels as CRMs export them; the rare variants exercise the downstream stage mapping.
WON_STAGES: tuple[tuple[str, float], ...] = (
    ("Closed Won", 0.95), ("won", 0.02), ("Won", 0.015), ("closed won", 0.015),
)
LOST_STAGES: tuple[tuple[str, float], ...] = (
    ("Closed Lost", 0.95), ("Lost", 0.02), ("lost", 0.015), ("CLOSED LOST", 0.015),
)
OPEN_STAGES: tuple[tuple[str, float], ...] = (("Prospecting", 0.6), ("Negotiation", 0.4))

ACTIVITY_TYPES: tuple[tuple[str, float], ...] = (("call", 0.40), ("email", 0.45), ("meeting", 0.15))
ACTIVITY_RATE = 1.0
ACTIVITY_SLOPE = 0.6
# Speed to lead: an account created inside the history window gets a first touch (its owner's, else an
# inbound SDR's) after a lognormal delay whose median falls from FIRST_TOUCH_SLOW_HOURS for the least likely
# buyers to FIRST_TOUCH_FAST_HOURS for the likeliest, so most land inside the tier SLA (A 4 h, B 24 h, C 72 h).
FIRST_TOUCH_FAST_HOURS = 0.3
FIRST_TOUCH_SLOW_HOURS = 24.0
FIRST_TOUCH_SIGMA = 0.8
# A minority is dropped: touched 3-20 times later than planned, or never touched at all.
FIRST_TOUCH_LATE_SHARE = 0.06
FIRST_TOUCH_LATE_FACTOR = (3.0, 20.0)
FIRST_TOUCH_NEVER_SHARE = 0.03
FIRST_TOUCH_TYPES: tuple[tuple[str, float], ...] = (("call", 0.55), ("email", 0.45))
INTENT_SIGNAL_SHARE = 0.60
RANK_SIGNAL_SHARE = 0.50

OWNED_SHARE = 0.70
CHILD_SHARE = 0.05
IT_BUDGET_BLANK_SHARE = 0.12
ACCOUNTS_PER_AE = 250
CAPACITY_HEADROOM = 1.2
NEW_HIRE_AES = 2
TEAM_SIZE = 8
REGIONS = ("West", "Central", "East", "South")
SEGMENTS: tuple[tuple[str, float], ...] = (("Enterprise", 0.2), ("Mid-Market", 0.4), ("SMB", 0.4))

_NAME_WORDS = (
    "Apex", "Blue", "Cedar", "Summit", "Harbor", "Iron", "Lumen", "Maple", "North", "Pioneer", "Quartz",
    "River", "Silver", "Stone", "Vertex", "Willow", "Atlas", "Beacon", "Cobalt", "Evergreen", "Granite",
    "Horizon", "Keystone", "Liberty", "Meridian", "Orchard", "Prairie", "Redwood", "Sterling", "Union",
)
_NAME_NOUNS = (
    "Analytics", "Bridge", "Capital", "Dynamics", "Health", "Labs", "Logic", "Networks", "Partners", "Point",
    "Works", "Systems", "Solutions", "Ventures", "Digital", "Foods", "Energy", "Freight", "Learning", "Retail",
)
_NAME_SUFFIXES = ("Inc", "LLC", "Corp", "Group", "Co", "Holdings")
_FIRST_NAMES = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Carlos", "Karen",
    "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Priya", "Kevin", "Maria", "Wei", "Aisha",
)
_LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Clark", "Lewis", "Nguyen", "Patel", "Kim",
)

# Streams of random numbers, one per stage, so a change to one stage leaves the others' draws untouched.
_STREAMS = (
    "geography", "reps", "owners", "accounts", "contacts", "events", "opportunities", "activities", "signals",
    "orphan_events", "orphan_activities",
)

_ACCOUNT_EXTRAS = {"ownership": pl.String, "it_budget_index": pl.Float64}
_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "accounts": {
        "account_id": pl.String, "account_name": pl.String, "industry": pl.String, "employees": pl.Int64,
        "annual_revenue": pl.Float64, "country": pl.String, "state": pl.String, "city": pl.String,
        "postal_code": pl.String, "latitude": pl.Float64, "longitude": pl.Float64, "technologies": pl.String,
        "parent_account_id": pl.String, "owner_rep_id": pl.String, "created_at": _TIMESTAMP,
        **_ACCOUNT_EXTRAS,
    },
    "opportunities": {
        "opportunity_id": pl.String, "account_id": pl.String, "stage": pl.String, "created_at": _TIMESTAMP,
        "closed_at": _TIMESTAMP, "amount": pl.Float64,
    },
    "reps": {
        "rep_id": pl.String, "name": pl.String, "role": pl.String, "region": pl.String, "segment": pl.String,
        "capacity_accounts": pl.Int64, "latitude": pl.Float64, "longitude": pl.Float64,
        "manager_id": pl.String, "start_date": pl.Date,
    },
    "contacts": {
        "contact_id": pl.String, "account_id": pl.String, "title": pl.String, "email": pl.String,
        "created_at": _TIMESTAMP,
    },
    "engagement_events": {
        "account_id": pl.String, "event_type": pl.String, "occurred_at": _TIMESTAMP, "event_id": pl.String,
        "contact_id": pl.String, "source": pl.String, "topic": pl.String, "value": pl.Float64,
    },
    "account_signals": {
        "account_id": pl.String, "signal": pl.String, "value": pl.Float64, "layer": pl.String,
        "observed_at": _TIMESTAMP,
    },
    "activities": {
        "account_id": pl.String, "occurred_at": _TIMESTAMP, "activity_id": pl.String, "rep_id": pl.String,
        "activity_type": pl.String,
    },
}
_TRUTH_SCHEMA: dict[str, pl.DataType] = {
    "account_id": pl.String, "true_fit_logit": pl.Float64, "true_intent_logit": pl.Float64,
    "true_persona_logit": pl.Float64, "true_probability": pl.Float64,
}
# (prefix, digits) of generated ids; wide enough for a million accounts.
_ID_FORMATS = {
    "accounts": ("A", 7), "contacts": ("C", 9), "engagement_events": ("E", 10), "opportunities": ("O", 8),
    "activities": ("T", 9), "reps": ("R", 3),
}


def generate_export(
    out_dir: str | Path,
    n_accounts: int = 5000,
    seed: int = 7,
    file_format: str = "parquet",
    as_of: date = date(2026, 6, 30),
    progress: Callable[[str, float], None] | None = None,
    orphan_share: float = ORPHAN_SHARE,
) -> dict:
    """Write a synthetic export into out_dir (plus out_dir/_truth) and return rows per table, paths and as_of.

    `orphan_share` of event and activity rows point to accounts deleted from the CRM, as real exports do,
    so the default run exercises rejected rows; pass 0 for a perfectly clean export.
    """
    if file_format not in FILE_FORMATS:
        raise ValueError(f"file_format must be one of {FILE_FORMATS}, got {file_format!r}")
    if n_accounts < 1:
        raise ValueError(f"n_accounts must be at least 1, got {n_accounts}")
    report = progress or (lambda stage, fraction: None)
    out = Path(out_dir)
    truth_dir = out / "_truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    _remove_previous_export(out)
    as_of_us = int(datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC).timestamp()) * _US

    city, lat, lon = _place_accounts(_rng(seed, "geography"), n_accounts)
    city_share = np.bincount(city, minlength=len(US_CITIES)) / n_accounts
    reps, rep_region, owner_eligible = _make_reps(_rng(seed, "reps"), n_accounts, city_share, as_of)
    inbound_reps = np.flatnonzero((reps["role"] == "SDR").to_numpy())
    owner = _assign_owners(_rng(seed, "owners"), _region(lat, lon), rep_region, owner_eligible)
    accounts, population = _make_accounts(_rng(seed, "accounts"), city, lat, lon, owner, reps["rep_id"], as_of_us)

    sinks = {t.name: _TableSink(out / f"{t.name}.{file_format}", file_format, _SCHEMAS[t.name]) for t in TABLES}
    truth_sink = _TableSink(truth_dir / "account_truth.parquet", "parquet", _TRUTH_SCHEMA)
    sinks["accounts"].write(accounts)
    report("accounts", 1.0)
    sinks["reps"].write(reps)
    report("reps", 1.0)

    probability_sum = 0.0
    n_chunks = -(-n_accounts // CHUNK_ACCOUNTS)
    for k in range(n_chunks):
        stop = min((k + 1) * CHUNK_ACCOUNTS, n_accounts)
        chunk = population.slice(k * CHUNK_ACCOUNTS, stop)
        truth = _write_chunk(seed, k, chunk, reps["rep_id"], inbound_reps, as_of_us, sinks, orphan_share)
        truth_sink.write(truth)
        probability_sum += float(truth["true_probability"].sum())
        report("account_chunks", stop / n_accounts)

    for sink in (*sinks.values(), truth_sink):
        sink.close()
    (truth_dir / "truth.json").write_text(
        json.dumps(_truth_document(seed, as_of, n_accounts, probability_sum / n_accounts), indent=2) + "\n"
    )
    return {
        "as_of": as_of.isoformat(),
        "seed": seed,
        "n_accounts": n_accounts,
        "file_format": file_format,
        "out_dir": str(out),
        "rows": {name: sink.rows for name, sink in sinks.items()},
        "paths": {name: str(sink.path) for name, sink in sinks.items()},
        "truth_paths": {"account_truth": str(truth_sink.path), "truth": str(truth_dir / "truth.json")},
    }


@dataclass(frozen=True)
class _Population:
    """Account-level arrays the per-chunk generators need (one entry per account, in account order)."""

    account_ids: pl.Series
    domains: pl.Series
    employees: np.ndarray
    created_us: np.ndarray
    owner: np.ndarray  # index into reps, -1 when the account has no owner
    targeted: np.ndarray
    intent: np.ndarray  # latent intent level, standard normal for targeted accounts
    persona_propensity: np.ndarray  # latent drive of ICP contacts to engage
    fit_logit: np.ndarray

    @property
    def size(self) -> int:
        return len(self.employees)

    def slice(self, start: int, stop: int) -> _Population:
        return _Population(
            account_ids=self.account_ids.slice(start, stop - start),
            domains=self.domains.slice(start, stop - start),
            **{
                name: getattr(self, name)[start:stop]
                for name in (
                    "employees", "created_us", "owner", "targeted", "intent", "persona_propensity", "fit_logit",
                )
            },
        )


@dataclass(frozen=True)
class _ContactLatents:
    """Per-contact facts the event generator needs: owning account (chunk-local index) and engagement."""

    account: np.ndarray
    engaged: np.ndarray
    icp: np.ndarray


class _TableSink:
    """Appends frames of one table to a parquet or CSV file under a fixed schema and counts the rows."""

    def __init__(self, path: Path, file_format: str, schema: dict[str, pl.DataType]):
        self.path = path
        self.file_format = file_format
        self.schema = schema
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._csv_started = False

    def write(self, frame: pl.DataFrame) -> None:
        frame = frame.select([pl.col(name).cast(dtype) for name, dtype in self.schema.items()])
        if self.file_format == "parquet":
            table = frame.to_arrow()
            if self._writer is None:
                self._writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
            self._writer.write_table(table.cast(self._writer.schema))
        else:
            with open(self.path, "ab" if self._csv_started else "wb") as handle:
                frame.write_csv(
                    handle,
                    include_header=not self._csv_started,
                    datetime_format="%Y-%m-%d %H:%M:%S",
                    date_format="%Y-%m-%d",
                )
            self._csv_started = True
        self.rows += frame.height

    def close(self) -> None:
        # A table that received no rows still gets a file with its header/schema.
        if self._writer is None and not self._csv_started:
            self.write(pl.DataFrame(schema=self.schema))
        if self._writer is not None:
            self._writer.close()


def _rng(seed: int, stream: str, chunk: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, _STREAMS.index(stream), chunk])


def _remove_previous_export(out: Path) -> None:
    """Drop contract files of an earlier run so a folder never mixes parquet and CSV exports."""
    for spec in TABLES:
        for file_format in FILE_FORMATS:
            (out / f"{spec.name}.{file_format}").unlink(missing_ok=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _shares(table: tuple[tuple, ...]) -> np.ndarray:
    weights = np.array([row[1] for row in table], dtype=float)
    return weights / weights.sum()


def _labels(values) -> pl.Series:
    return pl.Series(list(values), dtype=pl.String)


def _take(values: pl.Series, index: np.ndarray) -> pl.Series:
    """values[index], null where index is negative."""
    positions = pl.Series(index, dtype=pl.Int64)
    missing = np.flatnonzero(index < 0)
    if missing.size:
        positions = positions.scatter(missing, None)
    return values.gather(positions)


def _ids(table: str, first: int, n: int, width: int | None = None) -> pl.Series:
    """Ids first+1 .. first+n of a table, e.g. E0000000001; width overrides the table's digit count."""
    prefix, default_width = _ID_FORMATS[table]
    width = width or default_width
    numbers = pl.int_range(first + 1, first + n + 1, dtype=pl.Int64, eager=True)
    return (prefix + numbers.cast(pl.String).str.zfill(width)).alias("id")


def _timestamps(microseconds: np.ndarray) -> pl.Series:
    return pl.Series(microseconds, dtype=pl.Int64).cast(_TIMESTAMP)


def _seconds_before(rng: np.random.Generator, pull: np.ndarray) -> np.ndarray:
    """Seconds before as_of, within the history window; pull > 1 concentrates them near as_of."""
    return 1 + np.floor((_HISTORY_S - 1) * rng.random(pull.size) ** pull).astype(np.int64)


def _region(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Index into REGIONS: West of 104°W; else South below 36.5°N; else Central west of 80.5°W; else East."""
    return np.select([lon < -104.0, lat < 36.5, lon < -80.5], [0, 3, 1], default=2)


def _place_accounts(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """City index and jittered coordinates; city choice follows population, so metros cluster like real ones."""
    population = np.array([c.population for c in US_CITIES], dtype=float)
    city = rng.choice(len(US_CITIES), size=n, p=population / population.sum())
    lat, lon = _jitter(rng, city, spread_km=np.minimum(2.0 + 3.0 * np.sqrt(population[city] / 1e6), 8.0))
    return city, lat, lon


def _jitter(rng: np.random.Generator, city: np.ndarray, spread_km: np.ndarray | float):
    centre_lat = np.array([c.latitude for c in US_CITIES])[city]
    centre_lon = np.array([c.longitude for c in US_CITIES])[city]
    lat = centre_lat + rng.normal(0.0, 1.0, city.size) * spread_km / _KM_PER_DEGREE
    lon = centre_lon + rng.normal(0.0, 1.0, city.size) * spread_km / (
        _KM_PER_DEGREE * np.cos(np.radians(centre_lat))
    )
    return np.round(lat, 5), np.round(lon, 5)


def _person_names(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(0, len(_FIRST_NAMES), n), rng.integers(0, len(_LAST_NAMES), n)


def _make_reps(
    rng: np.random.Generator, n_accounts: int, city_share: np.ndarray, as_of: date
) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Reps frame, each rep's region index and which AEs may own accounts (not the fresh hires)."""
    n_ae = max(4, n_accounts // ACCOUNTS_PER_AE)
    n_sdr = max(2, n_ae // 2)
    n = n_ae + n_sdr
    is_ae = np.arange(n) < n_ae
    # Homes follow account density, so reps sit where the accounts are.
    home = rng.choice(len(US_CITIES), size=n, p=city_share)
    lat, lon = _jitter(rng, home, spread_km=5.0)
    region = _region(lat, lon)
    tenure_days = rng.integers(90, 8 * 365, n)
    new_hires = rng.choice(n_ae, size=min(NEW_HIRE_AES, n_ae), replace=False)
    tenure_days[new_hires] = rng.integers(5, 60, new_hires.size)
    capacity = np.where(
        is_ae, round(n_accounts / n_ae * CAPACITY_HEADROOM), round(n_accounts / n_sdr * CAPACITY_HEADROOM)
    )
    first, last = _person_names(rng, n)
    rep_ids = _ids("reps", 0, n, width=max(3, len(str(n))))
    frame = pl.DataFrame({
        "rep_id": rep_ids,
        "name": _labels(_FIRST_NAMES).gather(first) + " " + _labels(_LAST_NAMES).gather(last),
        "role": _labels(["AE", "SDR"]).gather(np.where(is_ae, 0, 1)),
        "region": _labels(REGIONS).gather(region),
        "segment": _labels(s for s, _ in SEGMENTS).gather(rng.choice(len(SEGMENTS), n, p=_shares(SEGMENTS))),
        "capacity_accounts": capacity,
        "latitude": lat,
        "longitude": lon,
        "manager_id": _take(rep_ids, _assign_managers(region, is_ae, tenure_days)),
        "start_date": pl.Series(np.datetime64(as_of, "D") - tenure_days.astype("timedelta64[D]")),
    })
    return frame, region, is_ae & (tenure_days >= 60)


def _assign_managers(region: np.ndarray, is_ae: np.ndarray, tenure_days: np.ndarray) -> np.ndarray:
    """Manager index per rep: the most senior AEs of each region lead teams of about TEAM_SIZE reps."""
    manager = np.full(region.size, -1)
    for r in range(len(REGIONS)):
        members = np.flatnonzero(region == r)
        leads_pool = members[is_ae[members]]
        if leads_pool.size == 0:
            continue
        n_leads = min(leads_pool.size, -(-members.size // TEAM_SIZE))
        leads = leads_pool[np.argsort(-tenure_days[leads_pool], kind="stable")[:n_leads]]
        team = np.setdiff1d(members, leads)
        manager[team] = leads[np.arange(team.size) % n_leads]
    return manager


def _assign_owners(
    rng: np.random.Generator, account_region: np.ndarray, rep_region: np.ndarray, eligible: np.ndarray
) -> np.ndarray:
    """Current owner AE per account (-1 for unowned): a random eligible AE of the account's region."""
    owner = np.full(account_region.size, -1)
    owned = rng.random(account_region.size) < OWNED_SHARE
    everyone = np.flatnonzero(eligible)
    for r in range(len(REGIONS)):
        rows = np.flatnonzero(owned & (account_region == r))
        local = np.flatnonzero(eligible & (rep_region == r))
        pool = local if local.size else everyone
        owner[rows] = pool[rng.integers(0, pool.size, rows.size)]
    return owner


def _make_accounts(
    rng: np.random.Generator,
    city: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    owner: np.ndarray,
    rep_ids: pl.Series,
    as_of_us: int,
) -> tuple[pl.DataFrame, _Population]:
    n = city.size
    industry = rng.choice(len(INDUSTRIES), size=n, p=_shares(INDUSTRIES))
    employees = np.maximum(1, np.round(np.exp(rng.normal(LOG_EMPLOYEES_MEAN, LOG_EMPLOYEES_SD, n)))).astype(
        np.int64
    )
    # Revenue is employees times a lognormal revenue per head, so the two are strongly correlated.
    revenue_per_head = np.exp(rng.normal(np.log(180_000), 0.5, n))
    ownership = rng.choice(len(OWNERSHIP), size=n, p=_shares(OWNERSHIP))
    tech_mask = _technology_mask(rng, np.log(employees))
    fit = _fit_logit(industry, employees, tech_mask, ownership)
    targeted = rng.random(n) >= UNTARGETED_SHARE
    intent = np.where(targeted, rng.normal(0.0, 1.0, n), UNTARGETED_INTENT)
    persona_propensity = rng.normal(0.0, 1.0, n)
    created_us = as_of_us - rng.integers(30 * _DAY_S, 6 * 365 * _DAY_S, n) * _US
    it_budget = np.round(100 * np.exp(0.3 * rng.normal(0.0, 1.0, n) + 0.4 * np.log(revenue_per_head / 180_000)), 1)
    it_budget[rng.random(n) < IT_BUDGET_BLANK_SHARE] = np.nan
    names, domains = _company_names(rng, n)
    account_ids = _ids("accounts", 0, n)
    frame = pl.DataFrame({
        "account_id": account_ids,
        "account_name": names,
        "industry": _labels(i[0] for i in INDUSTRIES).gather(industry),
        "employees": employees,
        "annual_revenue": np.round(employees * revenue_per_head, -3),
        "country": pl.Series(["US"], dtype=pl.String).gather(np.zeros(n, dtype=np.int64)),
        "state": _labels(c.state for c in US_CITIES).gather(city),
        "city": _labels(c.name for c in US_CITIES).gather(city),
        "postal_code": _labels(c.zip3 for c in US_CITIES).gather(city)
        + pl.Series(rng.integers(1, 100, n)).cast(pl.String).str.zfill(2),
        "latitude": lat,
        "longitude": lon,
        "technologies": _labels(_technology_strings()).gather(tech_mask),
        "parent_account_id": _take(account_ids, _parents(rng, industry)),
        "owner_rep_id": _take(rep_ids, owner),
        "created_at": _timestamps(created_us),
        "ownership": _labels(o[0] for o in OWNERSHIP).gather(ownership),
        "it_budget_index": pl.Series(it_budget, nan_to_null=True),
    })
    population = _Population(
        account_ids=account_ids, domains=domains, employees=employees, created_us=created_us, owner=owner,
        targeted=targeted, intent=intent, persona_propensity=persona_propensity, fit_logit=fit,
    )
    return frame, population


def _technology_mask(rng: np.random.Generator, log_employees: np.ndarray) -> np.ndarray:
    """Bit i set when the account runs TECHNOLOGIES[i]; adoption rises with company size."""
    base = np.array([t[1] for t in TECHNOLOGIES])
    logits = np.log(base / (1 - base))[None, :] + TECH_SIZE_SLOPE * (log_employees - LOG_EMPLOYEES_MEAN)[:, None]
    adopted = rng.random(logits.shape) < _sigmoid(logits)
    return adopted.astype(np.int64) @ (1 << np.arange(len(TECHNOLOGIES), dtype=np.int64))


def _technology_strings() -> list[str | None]:
    """The ';'-joined technology list for every bit mask (null for none), so rows map by index."""
    names = [t[0] for t in TECHNOLOGIES]
    return [
        ";".join(name for i, name in enumerate(names) if mask >> i & 1) or None
        for mask in range(1 << len(names))
    ]


def _fit_logit(
    industry: np.ndarray, employees: np.ndarray, tech_mask: np.ndarray, ownership: np.ndarray
) -> np.ndarray:
    tech_effect = np.array([t[2] for t in TECHNOLOGIES])
    tech_bits = (tech_mask[:, None] >> np.arange(len(TECHNOLOGIES))) & 1
    return (
        np.array([i[2] for i in INDUSTRIES])[industry]
        + FIT_LOG_EMPLOYEES * (np.log(employees) - LOG_EMPLOYEES_MEAN)
        + tech_bits @ tech_effect
        + np.array([o[2] for o in OWNERSHIP])[ownership]
    )


def _parents(rng: np.random.Generator, industry: np.ndarray) -> np.ndarray:
    """Parent account index per account (-1 for none): a few accounts belong to a same-industry parent."""
    parent = np.full(industry.size, -1)
    is_child = rng.random(industry.size) < CHILD_SHARE
    for i in range(len(INDUSTRIES)):
        children = np.flatnonzero(is_child & (industry == i))
        # Parents come from the non-child accounts, so hierarchies are one level deep and never cyclic.
        candidates = np.flatnonzero(~is_child & (industry == i))
        if candidates.size:
            parent[children] = candidates[rng.integers(0, candidates.size, children.size)]
    return parent


def _company_names(rng: np.random.Generator, n: int) -> tuple[pl.Series, pl.Series]:
    word = _labels(_NAME_WORDS).gather(rng.integers(0, len(_NAME_WORDS), n))
    noun = _labels(_NAME_NOUNS).gather(rng.integers(0, len(_NAME_NOUNS), n))
    suffix = _labels(_NAME_SUFFIXES).gather(rng.integers(0, len(_NAME_SUFFIXES), n))
    names = word + " " + noun + " " + suffix
    domains = (word + noun).str.to_lowercase() + ".com"
    return names, domains


def _write_chunk(
    seed: int, k: int, chunk: _Population, rep_ids: pl.Series, inbound_reps: np.ndarray, as_of_us: int,
    sinks: dict[str, _TableSink], orphan_share: float,
) -> pl.DataFrame:
    """Generate and append every child table for one chunk of accounts; return the chunk's truth rows."""
    contacts, latents = _contacts_chunk(_rng(seed, "contacts", k), chunk, sinks["contacts"].rows, as_of_us)
    persona = PERSONA_WEIGHT * np.bincount(
        latents.account, weights=latents.engaged & latents.icp, minlength=chunk.size
    )
    intent = INTENT_WEIGHT * chunk.intent
    probability = _sigmoid(INTERCEPT + chunk.fit_logit + intent + persona)
    sinks["contacts"].write(contacts)
    sinks["engagement_events"].write(_orphan_rows(_rng(seed, "orphan_events", k), _events_chunk(
        _rng(seed, "events", k), chunk, latents, contacts["contact_id"], sinks["engagement_events"].rows, as_of_us,
    ), orphan_share))
    sinks["opportunities"].write(_opportunities_chunk(
        _rng(seed, "opportunities", k), chunk, probability, sinks["opportunities"].rows, as_of_us,
    ))
    sinks["activities"].write(_orphan_rows(
        _rng(seed, "orphan_activities", k),
        _activities_chunk(_rng(seed, "activities", k), chunk, probability, rep_ids, inbound_reps,
                          sinks["activities"].rows, as_of_us),
        orphan_share,
    ))
    sinks["account_signals"].write(_signals_chunk(_rng(seed, "signals", k), chunk, as_of_us))
    return pl.DataFrame({
        "account_id": chunk.account_ids,
        "true_fit_logit": chunk.fit_logit,
        "true_intent_logit": intent,
        "true_persona_logit": persona,
        "true_probability": probability,
    })


def _orphan_rows(rng: np.random.Generator, frame: pl.DataFrame, share: float) -> pl.DataFrame:
    """Point a share of rows at accounts that no longer exist (deleted in the CRM, still in the event log)."""
    if share <= 0 or frame.height == 0:
        return frame
    orphaned = pl.Series(rng.random(frame.height) < share)
    return frame.with_columns(
        pl.when(orphaned).then(pl.lit(DELETED_ACCOUNT_PREFIX) + pl.col("account_id"))
        .otherwise(pl.col("account_id")).alias("account_id")
    )


def _contacts_chunk(
    rng: np.random.Generator, chunk: _Population, first_id: int, as_of_us: int
) -> tuple[pl.DataFrame, _ContactLatents]:
    """1-8 contacts per account (more at larger companies) and which of them engage."""
    size_share = np.clip(0.37 + 0.1 * (np.log(chunk.employees) - LOG_EMPLOYEES_MEAN), 0.05, 0.9)
    account = np.repeat(np.arange(chunk.size), 1 + rng.binomial(7, size_share))
    n = account.size
    title = rng.choice(len(TITLES), size=n, p=_shares(TITLES))
    icp = np.array([t[2] for t in TITLES])[title]
    engage_logit = ENGAGE_BASE + icp * (ENGAGE_ICP_LIFT + ENGAGE_ICP_SLOPE * chunk.persona_propensity[account])
    engaged = chunk.targeted[account] & (rng.random(n) < _sigmoid(engage_logit))
    first, last = _person_names(rng, n)
    created = chunk.created_us[account]
    frame = pl.DataFrame({
        "contact_id": _ids("contacts", first_id, n),
        "account_id": chunk.account_ids.gather(account),
        "title": _labels(t[0] for t in TITLES).gather(title),
        "email": _labels(_FIRST_NAMES).str.to_lowercase().gather(first) + "."
        + _labels(_LAST_NAMES).str.to_lowercase().gather(last) + "@" + chunk.domains.gather(account),
        "created_at": _timestamps(created + (rng.random(n) * (as_of_us - created) // _US).astype(np.int64) * _US),
    })
    return frame, _ContactLatents(account=account, engaged=engaged, icp=icp)


def _events_chunk(
    rng: np.random.Generator,
    chunk: _Population,
    latents: _ContactLatents,
    contact_ids: pl.Series,
    first_id: int,
    as_of_us: int,
) -> pl.DataFrame:
    """First-party events (one per engaged contact plus an intent-driven volume) and third-party topics."""
    account_fp, contact = _first_party_rows(rng, chunk, latents)
    n_topics = rng.poisson(TOPIC_RATE * np.exp(TOPIC_SLOPE * chunk.intent)) * chunk.targeted
    account_tp = np.repeat(np.arange(chunk.size), n_topics)
    n_fp, n_tp = account_fp.size, account_tp.size

    pricing = rng.random(n_fp) < _sigmoid(PRICING_BASE + PRICING_SLOPE * chunk.intent[account_fp])
    other = _OTHER_TYPES[rng.choice(_OTHER_TYPES.size, size=n_fp, p=_OTHER_TYPE_SHARES)]
    # Without a known contact only site visits can be attributed (no downloads, clicks or attendance).
    other = np.where(contact < 0, _WEB_VISIT, other)
    event_type = np.concatenate([np.where(pricing, _PRICING, other), np.full(n_tp, _INTENT_TOPIC)])
    topic = rng.choice(len(TOPICS), size=n_tp, p=_shares(TOPICS))
    strength = np.clip(np.round(50 + 15 * chunk.intent[account_tp] + rng.normal(0, 10, n_tp)), 1, 100)

    account = np.concatenate([account_fp, account_tp])
    # Interest is steady over the history window: an account's event rate, not its timing, follows its
    # intent, so features computed as of any past date (a training row's cutoff) read intent as today's do.
    # Events reach EVENT_LEAD_DAYS further back than the deals, so a deal closed early in the window still
    # has its full 180 days of history before its cutoff.
    seconds = 1 + np.floor((_HISTORY_S + EVENT_LEAD_DAYS * _DAY_S - 1) * rng.random(account.size)).astype(np.int64)
    return pl.DataFrame({
        "account_id": chunk.account_ids.gather(account),
        "event_type": _labels(EVENT_TYPES).gather(event_type),
        "occurred_at": _timestamps(as_of_us - seconds * _US),
        "event_id": _ids("engagement_events", first_id, account.size),
        "contact_id": _take(contact_ids, np.concatenate([contact, np.full(n_tp, -1)])),
        "source": _labels(SOURCES).gather(np.concatenate([np.zeros(n_fp, np.int64), np.ones(n_tp, np.int64)])),
        "topic": _take(_labels(t[0] for t in TOPICS), np.concatenate([np.full(n_fp, -1), topic])),
        "value": np.concatenate([np.ones(n_fp), strength]),
    })


def _first_party_rows(
    rng: np.random.Generator, chunk: _Population, latents: _ContactLatents
) -> tuple[np.ndarray, np.ndarray]:
    """Account index and contact index (-1 anonymous) of each first-party event in the chunk."""
    engaged = np.flatnonzero(latents.engaged)  # sorted by account, since contacts are
    n_engaged = np.bincount(latents.account[engaged], minlength=chunk.size)
    engaged_start = np.cumsum(n_engaged) - n_engaged
    # Every engaged contact has at least one event, so persona engagement is observable in the export.
    n_volume = rng.poisson(FIRST_PARTY_RATE * np.exp(FIRST_PARTY_SLOPE * chunk.intent)) * chunk.targeted
    volume_account = np.repeat(np.arange(chunk.size), n_volume)
    volume_contact = np.full(volume_account.size, -1)
    known = np.flatnonzero(
        (n_engaged[volume_account] > 0) & (rng.random(volume_account.size) >= ANONYMOUS_SHARE)
    )
    pick = (rng.random(known.size) * n_engaged[volume_account[known]]).astype(np.int64)
    volume_contact[known] = engaged[engaged_start[volume_account[known]] + pick]
    return (
        np.concatenate([latents.account[engaged], volume_account]),
        np.concatenate([engaged, volume_contact]),
    )


def _opportunities_chunk(
    rng: np.random.Generator, chunk: _Population, probability: np.ndarray, first_id: int, as_of_us: int
) -> pl.DataFrame:
    """1-5 opportunities on some accounts; closed ones are won with the account's true probability."""
    has = rng.random(chunk.size) < _sigmoid(OPPORTUNITY_BASE + OPPORTUNITY_INTENT * chunk.intent)
    account = np.repeat(np.arange(chunk.size), has * (1 + rng.binomial(EXTRA_OPPORTUNITIES, EXTRA_OPPORTUNITY_P, chunk.size)))
    n = account.size
    won = rng.random(n) < probability[account]
    closed = rng.random(n) < CLOSED_SHARE
    stage = np.select(
        [closed & won, closed & ~won],
        [
            rng.choice(len(WON_STAGES), size=n, p=_shares(WON_STAGES)),
            len(WON_STAGES) + rng.choice(len(LOST_STAGES), size=n, p=_shares(LOST_STAGES)),
        ],
        default=len(WON_STAGES) + len(LOST_STAGES) + rng.choice(len(OPEN_STAGES), size=n, p=_shares(OPEN_STAGES)),
    )
    duration_s = np.round(np.clip(np.exp(rng.normal(np.log(45), 0.6, n)), 3, 300) * _DAY_S).astype(np.int64)
    # Closed deals are created and closed inside the history window; open ones were created in it.
    closed_before = 1 + np.floor(rng.random(n) * (_HISTORY_S - duration_s - 1)).astype(np.int64)
    open_before = _seconds_before(rng, np.ones(n))
    created_before = np.where(closed, closed_before + duration_s, open_before)
    amount = np.round(np.exp(
        np.log(18_000) + 0.35 * (np.log(chunk.employees[account]) - LOG_EMPLOYEES_MEAN) + rng.normal(0, 0.5, n)
    ))
    stages = _labels(s for table in (WON_STAGES, LOST_STAGES, OPEN_STAGES) for s, _ in table)
    return pl.DataFrame({
        "opportunity_id": _ids("opportunities", first_id, n),
        "account_id": chunk.account_ids.gather(account),
        "stage": stages.gather(stage),
        "created_at": _timestamps(as_of_us - created_before * _US),
        "closed_at": _timestamps(as_of_us - closed_before * _US).scatter(np.flatnonzero(~closed), None),
        "amount": amount,
    })


def _activities_chunk(
    rng: np.random.Generator, chunk: _Population, probability: np.ndarray, rep_ids: pl.Series,
    inbound_reps: np.ndarray, first_id: int, as_of_us: int,
) -> pl.DataFrame:
    """A first touch on every account created in the history window, then owner touches on owned, targeted
    accounts: more and more recent on higher-intent accounts, never before the account's first touch."""
    new = chunk.created_us > as_of_us - _HISTORY_S * _US
    first_account, first_us, first_rep = _first_touches(rng, chunk, new, probability, inbound_reps, as_of_us)
    # A new account's follow-ups come after its first touch; a dropped one gets none.
    follow_from_us = np.full(chunk.size, as_of_us - _HISTORY_S * _US)
    follow_from_us[new] = as_of_us
    follow_from_us[first_account] = first_us
    worked = (chunk.owner >= 0) & chunk.targeted & (follow_from_us < as_of_us)
    counts = rng.poisson(ACTIVITY_RATE * np.exp(ACTIVITY_SLOPE * chunk.intent)) * worked
    account = np.repeat(np.arange(chunk.size), counts)
    span_s = np.maximum((as_of_us - follow_from_us[account]) // _US, 1)
    pull = np.exp(RECENCY_SLOPE * chunk.intent[account])
    seconds = 1 + np.floor((span_s - 1) * rng.random(account.size) ** pull).astype(np.int64)
    follow_type = rng.choice(len(ACTIVITY_TYPES), size=account.size, p=_shares(ACTIVITY_TYPES))
    first_type = rng.choice(len(FIRST_TOUCH_TYPES), size=first_account.size, p=_shares(FIRST_TOUCH_TYPES))
    type_labels = _labels(a for a, _ in ACTIVITY_TYPES)
    first_labels = _labels(a for a, _ in FIRST_TOUCH_TYPES)
    return pl.DataFrame({
        "account_id": chunk.account_ids.gather(np.concatenate([first_account, account])),
        "occurred_at": _timestamps(np.concatenate([first_us, as_of_us - seconds * _US])),
        "activity_id": _ids("activities", first_id, first_account.size + account.size),
        "rep_id": rep_ids.gather(np.concatenate([first_rep, chunk.owner[account]])),
        "activity_type": pl.concat([first_labels.gather(first_type), type_labels.gather(follow_type)]),
    })


def _first_touches(
    rng: np.random.Generator, chunk: _Population, new: np.ndarray, probability: np.ndarray,
    inbound_reps: np.ndarray, as_of_us: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Account index, time and rep index of the first touch of each new account (created in the history window).

    Reps work the likeliest buyers first (the truth's probability percentile in the chunk stands in for the
    tier they see); owned accounts are touched by their owner, unowned ones by an inbound SDR.
    """
    percentile = (np.argsort(np.argsort(probability, kind="stable"), kind="stable") + 0.5) / max(chunk.size, 1)
    median_hours = FIRST_TOUCH_FAST_HOURS * (FIRST_TOUCH_SLOW_HOURS / FIRST_TOUCH_FAST_HOURS) ** (1 - percentile)
    hours = median_hours * np.exp(rng.normal(0.0, FIRST_TOUCH_SIGMA, chunk.size))
    fate = rng.random(chunk.size)
    late_factor = np.exp(rng.uniform(*np.log(FIRST_TOUCH_LATE_FACTOR), chunk.size))
    hours = np.where(fate < FIRST_TOUCH_LATE_SHARE, hours * late_factor, hours)
    # Every export has at least two SDRs (see _make_reps).
    inbound = inbound_reps[rng.integers(0, inbound_reps.size, chunk.size)]
    touched_us = chunk.created_us + np.round(hours * 3600 * _US).astype(np.int64)
    touched = new & (fate < 1 - FIRST_TOUCH_NEVER_SHARE) & (touched_us < as_of_us)
    account = np.flatnonzero(touched)
    rep = np.where(chunk.owner[account] >= 0, chunk.owner[account], inbound[account])
    return account, touched_us[account], rep


def _signals_chunk(rng: np.random.Generator, chunk: _Population, as_of_us: int) -> pl.DataFrame:
    """A vendor intent score (engagement layer) and a web traffic rank (fit layer) on part of the accounts."""
    scored = np.flatnonzero(rng.random(chunk.size) < INTENT_SIGNAL_SHARE)
    ranked = np.flatnonzero(rng.random(chunk.size) < RANK_SIGNAL_SHARE)
    score = np.clip(np.round(50 + 18 * chunk.intent[scored] + rng.normal(0, 12, scored.size), 1), 0, 100)
    # Bigger companies have busier sites, hence a better (smaller) rank.
    rank = np.maximum(1, np.round(
        10 ** (7.2 - 0.55 * np.log10(chunk.employees[ranked]) + rng.normal(0, 0.35, ranked.size))
    ))
    account = np.concatenate([scored, ranked])
    kind = np.concatenate([np.zeros(scored.size, np.int64), np.ones(ranked.size, np.int64)])
    observed_days = rng.integers(1, 31, account.size)
    return pl.DataFrame({
        "account_id": chunk.account_ids.gather(account),
        "signal": _labels(["intent_score", "web_traffic_rank"]).gather(kind),
        "value": np.concatenate([score, rank]),
        "layer": _labels(["engagement", "fit"]).gather(kind),
        "observed_at": _timestamps(as_of_us - observed_days * _DAY_S * _US),
    })


def _truth_document(seed: int, as_of: date, n_accounts: int, mean_probability: float) -> dict:
    return {
        "seed": seed,
        "as_of": as_of.isoformat(),
        "n_accounts": n_accounts,
        "formula": "true_probability = sigmoid(intercept + true_fit_logit + true_intent_logit + true_persona_logit)",
        "intercept": INTERCEPT,
        "mean_true_probability": mean_probability,
        "fit": {
            "industry": {name: effect for name, _, effect in INDUSTRIES},
            "log_employees": FIT_LOG_EMPLOYEES,
            "log_employees_center": LOG_EMPLOYEES_MEAN,
            "technologies": {name: effect for name, _, effect in TECHNOLOGIES},
            "ownership": {name: effect for name, _, effect in OWNERSHIP},
        },
        "intent": {
            "weight": INTENT_WEIGHT,
            "latent": "standard normal intent level per targeted account",
            "untargeted_share": UNTARGETED_SHARE,
            "untargeted_level": UNTARGETED_INTENT,
        },
        "persona": {
            "weight_per_engaged_icp_contact": PERSONA_WEIGHT,
            "icp_titles": [title for title, _, icp in TITLES if icp],
        },
    }
