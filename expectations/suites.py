"""Great Expectations suites for the raw CRM tables and the scored accounts, defined in code.

Each suite is a function returning fresh expectation objects: GX binds an expectation to the suite and
context it is added to, so sharing module-level instances between runs would leak that state.

Expectations tagged with ``ALL_ROWS`` must see every row of the table (uniqueness, row counts, strict
not-null on keys); the runner may check the others on a sample of a large table.
"""

from __future__ import annotations

from collections.abc import Callable

import great_expectations.expectations as gxe
from great_expectations.expectations import Expectation

SCOPE_KEY = "scope"
ALL_ROWS = "all_rows"

# A number as text, as the CSV importer stores it: optional sign, decimals or exponent, stray blanks.
NUMERIC_TEXT = r"^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*$"
BLANK_TEXT = r"^\s*$"


def _all_rows(expectation: Expectation) -> Expectation:
    expectation.meta = {**(expectation.meta or {}), SCOPE_KEY: ALL_ROWS}
    return expectation


def needs_all_rows(expectation: Expectation) -> bool:
    """True when the expectation is only meaningful over the complete table, never a sample."""
    return (expectation.meta or {}).get(SCOPE_KEY) == ALL_ROWS


def raw_accounts() -> list[Expectation]:
    """``raw.accounts``: every column VARCHAR plus ``_row_number`` and ``_source_file``."""
    return [
        gxe.ExpectColumnToExist(column="account_id"),
        gxe.ExpectColumnToExist(column="_row_number"),
        _all_rows(gxe.ExpectTableRowCountToBeBetween(min_value=1)),
        # Staging rejects rows with an empty id, so a small share is tolerated here rather than failing
        # the whole load; null and blank are both "empty" to staging.
        gxe.ExpectColumnValuesToNotBeNull(column="account_id", mostly=0.99),
        gxe.ExpectColumnValuesToNotMatchRegex(column="account_id", regex=BLANK_TEXT, mostly=0.99),
        _all_rows(gxe.ExpectColumnValuesToBeUnique(column="account_id")),
        # Nulls are skipped by GX, so files without coordinates pass; filled-in values must parse.
        gxe.ExpectColumnValuesToMatchRegex(column="latitude", regex=NUMERIC_TEXT, mostly=0.95),
        gxe.ExpectColumnValuesToMatchRegex(column="longitude", regex=NUMERIC_TEXT, mostly=0.95),
    ]


def raw_opportunities() -> list[Expectation]:
    """``raw.opportunities``: every column VARCHAR plus ``_row_number`` and ``_source_file``."""
    return [
        gxe.ExpectColumnToExist(column="opportunity_id"),
        gxe.ExpectColumnToExist(column="account_id"),
        gxe.ExpectColumnToExist(column="stage"),
        _all_rows(gxe.ExpectColumnValuesToNotBeNull(column="opportunity_id")),
        _all_rows(gxe.ExpectColumnValuesToBeUnique(column="opportunity_id")),
        _all_rows(gxe.ExpectColumnValuesToNotBeNull(column="stage")),
    ]


def account_scores() -> list[Expectation]:
    """``main.account_scores``: typed, one row per scored account."""
    return [
        # An empty score table would pass every column check vacuously.
        _all_rows(gxe.ExpectTableRowCountToBeBetween(min_value=1)),
        _all_rows(gxe.ExpectColumnValuesToNotBeNull(column="account_id")),
        _all_rows(gxe.ExpectColumnValuesToBeUnique(column="account_id")),
        _all_rows(gxe.ExpectColumnValuesToNotBeNull(column="conversion_probability")),
        gxe.ExpectColumnValuesToBeBetween(column="conversion_probability", min_value=0, max_value=1),
        _all_rows(gxe.ExpectColumnValuesToNotBeNull(column="priority_score")),
        gxe.ExpectColumnValuesToBeBetween(column="priority_score", min_value=0, max_value=100),
        # "In set" skips nulls, so a missing tier needs its own check.
        _all_rows(gxe.ExpectColumnValuesToNotBeNull(column="tier")),
        gxe.ExpectColumnValuesToBeInSet(column="tier", value_set=["A", "B", "C"]),
        # fit_score is null for accounts without firmographics; only present values are bounded.
        gxe.ExpectColumnValuesToBeBetween(column="fit_score", min_value=0, max_value=100),
        _all_rows(gxe.ExpectColumnValuesToNotBeNull(column="top_factors")),
    ]


SUITES: dict[str, Callable[[], list[Expectation]]] = {
    "raw_accounts": raw_accounts,
    "raw_opportunities": raw_opportunities,
    "account_scores": account_scores,
}
