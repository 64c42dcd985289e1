"""Run a named expectation suite on a pandas frame and turn every GX error into a failed check.

Large tables: expectations tagged "all rows" in ``suites`` (uniqueness, row count, strict not-null)
always run on the complete frame, restricted to the columns they read, because a sample cannot prove a
key unique or a column free of nulls. The remaining row-level expectations (ranges, sets, patterns,
"mostly" shares) run on a seeded random sample of ``sample_rows`` rows when the frame is larger;
pass ``sample_rows=None`` to check every row. A rare out-of-range value in a table larger than
``sample_rows`` can therefore escape the row-level checks; ``SuiteOutcome.rows_sampled`` says how many
rows they saw.

GX 1.x beside pandas 3: string columns arrive as pandas' ``str`` dtype. The suites here evaluated the
same on ``str`` and ``object`` columns under GX 1.24.1, but other GX code paths misread ``str`` (the
type-list expectation fails on it), so the runner hands GX ``object`` columns, the dtype GX was written
against. Whatever still raises (in a metric, in the expectation itself or around the whole validation)
is reported under ``errored`` and makes the suite fail.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import great_expectations as gx
import pandas as pd
from great_expectations.core import ExpectationValidationResult
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.expectations import Expectation

from expectations.suites import SUITES, needs_all_rows

DEFAULT_SAMPLE_ROWS = 200_000
_EXAMPLES = 5


@dataclass
class SuiteOutcome:
    """What one suite run found. ``success`` is False when anything failed or errored."""

    suite: str
    success: bool
    evaluated: int
    failed: list[dict[str, Any]] = field(default_factory=list)
    errored: list[dict[str, Any]] = field(default_factory=list)
    rows: int = 0
    rows_sampled: int = 0


def run_suite(
    name: str, df: pd.DataFrame, *, sample_rows: int | None = DEFAULT_SAMPLE_ROWS, seed: int = 0
) -> SuiteOutcome:
    """Validate ``df`` against the suite ``name`` (one of ``SUITES``) in a fresh ephemeral GX context."""
    if name not in SUITES:
        raise ValueError(f"unknown expectation suite {name!r}; known suites: {sorted(SUITES)}")
    expectations = SUITES[name]()

    sampled = sample_rows is not None and len(df) > sample_rows
    if sampled:
        sample = df.sample(n=sample_rows, random_state=seed)
        groups = [
            ("all_rows", df, [e for e in expectations if needs_all_rows(e)]),
            ("sample", sample, [e for e in expectations if not needs_all_rows(e)]),
        ]
    else:
        # One batch lets GX share metrics (null counts, column lists) between expectations.
        groups = [("all_rows", df, expectations)]

    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
        ),
    )
    asset = context.data_sources.add_pandas(name=name).add_dataframe_asset(name=name)

    failed: list[dict[str, Any]] = []
    errored: list[dict[str, Any]] = []
    for label, frame, group in groups:
        if not group:
            continue
        for (kind, column), result in _validate(asset, f"{name}_{label}", _gx_frame(frame, group), group):
            where = {"expectation": kind, "column": column}
            message = _error_message(result)
            if message is not None:
                errored.append({**where, "error": message})
            elif not result.success:
                failed.append({**where, **_summary(result.result or {})})

    return SuiteOutcome(
        suite=name,
        success=not failed and not errored,
        evaluated=len(expectations),
        failed=failed,
        errored=errored,
        rows=len(df),
        rows_sampled=min(len(df), sample_rows) if sampled else len(df),
    )


def _gx_frame(frame: pd.DataFrame, group: list[Expectation]) -> pd.DataFrame:
    """The columns the expectations read, with pandas string columns as ``object``.

    A column an expectation names but the frame lacks stays missing, so GX reports it (the column
    existence check fails, a value check on it errors).
    """
    wanted = {getattr(e, "column", None) for e in group}
    columns = [c for c in frame.columns if c in wanted]
    narrow = frame[columns]
    strings = {c: object for c in columns if pd.api.types.is_string_dtype(narrow[c].dtype)}
    return narrow.astype(strings) if strings else narrow


def _validate(
    asset: Any, batch_name: str, frame: pd.DataFrame, group: list[Expectation]
) -> list[tuple[tuple[str, str | None], ExpectationValidationResult | Exception]]:
    """One (expectation type, column) key and result per expectation; an exception stands in for a
    result GX could not produce."""
    try:
        batch = asset.add_batch_definition_whole_dataframe(batch_name).get_batch(
            batch_parameters={"dataframe": frame}
        )
    except Exception as exc:  # noqa: BLE001 - a batch that cannot load fails every check in it
        return [(_key(e.configuration), exc) for e in group]
    try:
        results = batch.validate(gx.ExpectationSuite(name=batch_name, expectations=group)).results
    except Exception:  # noqa: BLE001 - GX catches most errors itself; retry singly to attribute the rest
        return [(_key(e.configuration), _validate_one(batch, e)) for e in group]
    pairs: list[tuple[tuple[str, str | None], ExpectationValidationResult | Exception]] = [
        (_key(r.expectation_config), r) for r in results
    ]
    # An expectation GX silently dropped must not read as a pass.
    missing = Counter(_key(e.configuration) for e in group) - Counter(key for key, _ in pairs)
    pairs += [(key, RuntimeError("GX returned no result")) for key in missing.elements()]
    return pairs


def _key(config: Any) -> tuple[str, str | None]:
    return config.type, config.kwargs.get("column")


def _validate_one(batch: Any, expectation: Expectation) -> ExpectationValidationResult | Exception:
    try:
        return batch.validate(expectation)
    except Exception as exc:  # noqa: BLE001 - reported as an errored expectation
        return exc


def _error_message(result: ExpectationValidationResult | Exception) -> str | None:
    """The error behind a result, or None when the expectation was evaluated.

    GX reports an error in the expectation itself as a flat ``exception_info`` and an error while
    computing a metric as a mapping from metric id to such a dict; both count.
    """
    if isinstance(result, Exception):
        return f"{type(result).__name__}: {result}"
    info = result.exception_info or {}
    if "raised_exception" in info:
        entries = [info]
    else:
        entries = [v for v in info.values() if isinstance(v, Mapping)]
    messages = sorted(
        {str(e.get("exception_message") or "exception raised") for e in entries if e.get("raised_exception")}
    )
    return "; ".join(messages) if messages else None


def _summary(result: Mapping[str, Any]) -> dict[str, Any]:
    """A short, printable account of what a failed expectation saw."""
    count = result.get("unexpected_count")
    if count is None:
        return {"unexpected_count": None, "observed": f"observed {_plain(result.get('observed_value'))!r}"}
    examples = [_plain(v) for v in (result.get("partial_unexpected_list") or [])[:_EXAMPLES]]
    percent = result.get("unexpected_percent")
    share = f" ({percent:.2f}%)" if percent is not None else ""
    return {"unexpected_count": int(count), "observed": f"{int(count)} unexpected{share}, e.g. {examples!r}"}


def _plain(value: Any) -> Any:
    """numpy scalars as Python values, so summaries print and serialise cleanly."""
    return value.item() if hasattr(value, "item") and callable(value.item) else value
