"""The short run summary `territory run` prints: inputs, tiers, model metrics, balance, monitors, checks."""

from __future__ import annotations

from dagster import ExecuteInProcessResult

from orchestration.resources import PipelineSettings
from orchestration.tables import table_exists, territory_balance


def failed_checks(result: ExecuteInProcessResult) -> list[str]:
    """Names and severities of asset checks that did not pass in this run."""
    return [
        f"{e.asset_key.to_user_string()}:{e.check_name} ({e.severity.value})"
        for e in result.get_asset_check_evaluations()
        if not e.passed
    ]


def _rows(con, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _kpi_line(rows: list[tuple]) -> str:
    """SLA compliance, win rate and forecast Brier per tier, from kpi_by_tier."""
    graded = sum(n for *_, n, _ in rows)
    brier = ", ".join(f"{t} {b:.3f}" for t, _, _, b, _, _ in rows if b is not None) if graded else \
        "none yet (no outcome closed after a scored run)"
    window = rows[0][-1]
    basis = f"last {window} days" if window is not None else "all outcomes: some close dates missing"
    return ("KPIs by tier: SLA compliance " + ", ".join(f"{t} {_percent(sla)}" for t, sla, *_ in rows)
            + f"; win rate ({basis}) " + ", ".join(f"{t} {_percent(win)}" for t, _, win, *_ in rows)
            + f"; forecast Brier {brier}")


def _attribute_lines(rows: list[tuple]) -> list[str]:
    """Which extra account columns became features, and which were left out and why."""
    if not rows:
        return []
    used = [name for name, is_used, _ in rows if is_used]
    lines = [f"extra account columns offered to the fit layer: {', '.join(used) if used else 'none'}"]
    lines += [f"  left out: {name} ({reason})" for name, is_used, reason in rows if not is_used]
    return lines


def _ece_note(values: dict[str, float]) -> str:
    """The ECE's bins, and the ECE perfectly calibrated predictions would show on the same rows."""
    floor = values.get("ece_noise_floor")
    return (f" (ECE over {int(values['ece_bins'])} equal-mass bins"
            + (f"; perfectly calibrated predictions would show {floor:.3f} on these rows" if floor is not None else "")
            + ")")


def model_lines(con, shift_note: float, minimums: dict[str, int] | None = None) -> list[str]:
    """The model's metrics and tier lift, saying on which rows: held-out test, back-test, out-of-fold or in-sample.

    A held-out base rate off train's by `shift_note` (relative) or more gets a line of its own, and so does a
    calibration shifted toward recent outcomes. A low-confidence run names the counts below `minimums` (metric name
    to the policy's minimum).
    """
    combined = _rows(con, "select split, metric, value from score_model_metrics where layer = 'combined'")
    by_split: dict[str, dict[str, float]] = {}
    for split, metric, value in combined:
        by_split.setdefault(split, {})[metric] = value
    low_conf = max((v.get("low_confidence", 0.0) for v in by_split.values()), default=0.0)
    counts = by_split.get("train", {})
    below = [f"{int(counts[name]):,} {name.replace('_', ' ')}, policy minimum {minimum:,}"
             for name, minimum in (minimums or {}).items() if name in counts and counts[name] < minimum]
    short = "; ".join(below) or "outcomes or distinct accounts below the policy minimums"
    warning = f"  [LOW CONFIDENCE: {short}; see score_model_metrics]" if low_conf else ""
    if "in_sample" in by_split:
        values = by_split["in_sample"]
        scorer = "policy prior weights" if values.get("prior_weights") else "the champion model"
        label = f"in-sample, {scorer}; no model trained this run, nothing held out"
    else:
        values = by_split.get("test", {})
        label = "held-out test"
    shown = ", ".join(f"{k} {values[k]:.3f}" for k in ("auc", "brier", "ece", "log_loss") if k in values)
    bins = _ece_note(values) if "ece" in values and "ece_bins" in values else ""
    lines = [f"model ({label}, n={int(values.get('n', 0)):,}): {shown or 'no evaluated outcomes'}{bins}{warning}"]
    ratio = by_split.get("test", {}).get("base_rate_ratio_to_train")
    if ratio is not None and abs(ratio - 1) >= shift_note:
        train, test = by_split["train"]["base_rate"], by_split["test"]["base_rate"]
        lines.append(f"  base rate shift: the held-out test period converts at {test:.1%} against {train:.1%} in "
                     f"train ({ratio:.1f}x); held-out calibration and Brier reflect that shift")
    train = by_split.get("train", {})
    if train.get("recent_logit_shift"):
        lines.append(f"  recalibrated toward recent outcomes: {train['recent_logit_shift']:+.2f} on the logit scale "
                     f"(outcomes weighted by a {train['recent_shift_half_life_days']:g}-day half-life, chosen on the "
                     "latest training outcomes)")
    for split, label in (("back_test", "back-test, {windows} out-of-time windows, n={n:,}"),
                         ("cross_validated", "out-of-fold over all {n:,} closed outcomes")):
        pooled = by_split.get(split)
        if pooled:
            lines.append(f"model ({label.format(windows=int(pooled.get('windows', 0)), n=int(pooled['n']))}): "
                         + ", ".join(f"{k} {pooled[k]:.3f}" for k in ("auc", "brier", "ece") if k in pooled)
                         + _ece_note(pooled))
    lift = _rows(con, "select tier, n, conversion_rate from tier_lift order by tier")
    if lift:
        lines.append(f"tier lift ({'in-sample' if 'in_sample' in by_split else 'held-out'} conversion): "
                     + ", ".join(f"{t} {rate:.1%} (n={n:,})" for t, n, rate in lift if rate is not None))
    return lines


def plan_warning_lines(con) -> list[str]:
    """The live plan's warnings (why balance or shape may be out of reach) as one indented line, if any."""
    if not table_exists(con, "territory_scenarios"):
        return []
    found = _rows(con, "select warnings from territory_scenarios where scenario = 'live_policy'")
    return [f"  plan notes: {found[0][0]}"] if found and found[0][0] else []


def print_run_summary(settings: PipelineSettings, result: ExecuteInProcessResult, seconds: float) -> None:
    lines = [f"run {result.run_id} succeeded in {seconds:.0f} s", "", "inputs (rows in = accepted + rejected):"]
    with settings.reader() as con:
        for file, total, accepted, rejected in _rows(
            con, "select coalesce(file, table_name), input_rows, accepted_rows, rejected_rows from input_row_counts "
                 "where present order by table_name"
        ):
            lines.append(f"  {file:<28} {total:>11,} = {accepted:>10,} accepted + {rejected:>8,} rejected")
        absent = [r[0] for r in _rows(con, "select table_name from raw.load_manifest where not present")]
        if absent:
            lines.append(f"  absent optional files (features switched off): {', '.join(absent)}")

        if table_exists(con, "account_attribute_profile"):
            lines += _attribute_lines(_rows(con, "select attribute, used_as_feature, excluded_reason "
                                                 "from account_attribute_profile order by attribute"))

        tiers = dict(_rows(con, "select tier, count(*) from account_scores group by tier"))
        total = sum(tiers.values())
        lines.append("")
        lines.append("tiers: " + ", ".join(f"{t} {tiers.get(t, 0):,}" for t in "ABC") + f" (of {total:,} accounts)")
        scoring = settings.load_policy().scoring
        lines += model_lines(con, scoring.base_rate_shift_note, {
            "closed_outcomes": scoring.min_closed_outcomes, "won_outcomes": scoring.min_won_outcomes,
            "accounts_with_outcomes": scoring.min_distinct_accounts})

        basis, count = _rows(con, "select any_value(basis), count(*) from territories")[0]
        balance = territory_balance(con)
        lines.append("")
        lines.append(f"territories: {count} ({basis}); max deviation from mean: potential {balance['potential']:.1%}, "
                     f"workload {balance['workload']:.1%}, accounts {balance['account_count']:.1%} "
                     f"(tolerance {settings.load_policy().territories.tolerance:.0%})")
        lines += plan_warning_lines(con)
        drift = dict(_rows(con, "select status, count(*) from monitor_score_drift group by status"))
        coverage = dict(_rows(con, "select status, count(*) from monitor_coverage group by status"))
        lines.append("monitors: drift " + ", ".join(f"{k} {v}" for k, v in sorted(drift.items()))
                     + "; coverage " + ", ".join(f"{k} {v}" for k, v in sorted(coverage.items())))
        kpis = _rows(con, "select tier, sla_compliance, win_rate, forecast_brier, forecast_opportunities, "
                          "outcome_window_days from kpi_by_tier order by tier") if table_exists(con, "kpi_by_tier") else []
        if kpis:
            lines.append(_kpi_line(kpis))
    failed = failed_checks(result)
    lines.append("checks: all passed" if not failed else "checks not passed: " + "; ".join(failed))
    lines += [
        "",
        f"warehouse:  {settings.warehouse_path}",
        (f"report:     {settings.reports_dir / 'territory_report.html'} (self-contained HTML: map, balance, tiers, "
         "KPIs, monitors)"),
        f"analysts:   {settings.analytics_path} (read-only copy, safe to query during runs), e.g.",
        (".venv/bin/python -c \"import duckdb; print(duckdb.connect('"
         f"{settings.analytics_path}', read_only=True).sql('select tier, count(*) from account_scores group by 1'))\""),
        "lineage UI: make ui  (or .venv/bin/territory ui), then open http://127.0.0.1:3000",
    ]
    print("\n".join(lines), flush=True)
