"""The input contract: which files a CRM export holds, their required and recognised columns."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TableSpec:
    """One input table of the contract."""

    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    key: str | None
    required_file: bool
    # Child tables reference an account; rows pointing to an unknown account are rejected.
    account_ref: bool = False
    numeric: tuple[str, ...] = field(default=())
    timestamps: tuple[str, ...] = field(default=())

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


ACCOUNTS = TableSpec(
    name="accounts",
    required=("account_id",),
    optional=(
        "account_name", "industry", "employees", "annual_revenue", "country", "state", "city",
        "postal_code", "latitude", "longitude", "technologies", "parent_account_id", "owner_rep_id",
        "created_at",
    ),
    key="account_id",
    required_file=True,
    numeric=("employees", "annual_revenue", "latitude", "longitude"),
    timestamps=("created_at",),
)
OPPORTUNITIES = TableSpec(
    name="opportunities",
    required=("opportunity_id", "account_id", "stage"),
    optional=("created_at", "closed_at", "amount"),
    key="opportunity_id",
    required_file=True,
    account_ref=True,
    numeric=("amount",),
    timestamps=("created_at", "closed_at"),
)
REPS = TableSpec(
    name="reps",
    required=("rep_id",),
    optional=(
        "name", "role", "region", "segment", "capacity_accounts", "latitude", "longitude",
        "manager_id", "start_date",
    ),
    key="rep_id",
    required_file=True,
    numeric=("capacity_accounts", "latitude", "longitude"),
    timestamps=("start_date",),
)
CONTACTS = TableSpec(
    name="contacts",
    required=("contact_id", "account_id"),
    optional=("title", "email", "created_at"),
    key="contact_id",
    required_file=False,
    account_ref=True,
    timestamps=("created_at",),
)
ENGAGEMENT_EVENTS = TableSpec(
    name="engagement_events",
    required=("account_id", "event_type", "occurred_at"),
    optional=("event_id", "contact_id", "source", "topic", "value"),
    key="event_id",
    required_file=False,
    account_ref=True,
    numeric=("value",),
    timestamps=("occurred_at",),
)
ACCOUNT_SIGNALS = TableSpec(
    name="account_signals",
    required=("account_id", "signal", "value"),
    optional=("layer", "observed_at"),
    key=None,
    required_file=False,
    account_ref=True,
    numeric=("value",),
    timestamps=("observed_at",),
)
ACTIVITIES = TableSpec(
    name="activities",
    required=("account_id", "occurred_at"),
    optional=("activity_id", "rep_id", "activity_type"),
    key="activity_id",
    required_file=False,
    account_ref=True,
    timestamps=("occurred_at",),
)

TABLES: tuple[TableSpec, ...] = (
    ACCOUNTS, OPPORTUNITIES, REPS, CONTACTS, ENGAGEMENT_EVENTS, ACCOUNT_SIGNALS, ACTIVITIES,
)
TABLES_BY_NAME = {t.name: t for t in TABLES}

# Timestamp formats accepted for every date column, tried in order after ISO 8601.
TIMESTAMP_FORMATS = ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y", "%d.%m.%Y", "%Y/%m/%d")
