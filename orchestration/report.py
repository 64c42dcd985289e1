"""The stakeholder report: territory map, balance, tier mix, KPIs and monitor status as one self-contained HTML file."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass

import matplotlib

# No display on servers or in runs: render straight to PNG bytes.
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from orchestration.tables import BALANCE_CRITERIA, read_frame, table_exists

# Plotting a million points adds nothing a sample does not show.
MAP_SAMPLE = 20_000
# The kpi_by_tier columns the report shows (the mart has the counts behind each rate).
KPI_REPORT_COLUMNS = (
    "accounts", "pipeline_per_account", "win_rate", "meeting_rate", "opportunity_creation_rate_2plus_icp_personas",
    "opportunity_creation_rate_under_2_icp_personas", "touches_per_rep", "sla_compliance", "forecast_brier",
    "cac_payback_months",
)


@dataclass
class Report:
    html: str
    # chart name -> PNG bytes, for the asset metadata
    charts: dict[str, bytes]


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _map(accounts: pd.DataFrame, territories: pd.DataFrame) -> bytes:
    figure, ax = plt.subplots(figsize=(9, 5.5))
    shown = accounts.dropna(subset=["latitude", "longitude"])
    shown = shown.sample(min(len(shown), MAP_SAMPLE), random_state=0)
    codes = shown["territory_id"].astype("category").cat.codes
    ax.scatter(shown["longitude"], shown["latitude"], c=codes, cmap="tab20", s=4, alpha=0.6)
    centres = territories.dropna(subset=["center_latitude", "center_longitude"])
    ax.scatter(centres["center_longitude"], centres["center_latitude"], marker="X", s=80, c="black")
    for row in centres.itertuples():
        ax.annotate(str(row.rep_id), (row.center_longitude, row.center_latitude), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_title("Territories (accounts coloured by territory, X = centre and owner)")
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    return _png(figure)


def _balance(territories: pd.DataFrame, tolerance: float) -> bytes:
    figure, axes = plt.subplots(1, len(BALANCE_CRITERIA), figsize=(12, 4), sharey=True)
    ordered = territories.sort_values("territory_id")
    for ax, criterion in zip(axes, BALANCE_CRITERIA):
        deviation = ordered[criterion] / ordered[criterion].mean() - 1
        colours = ["tab:red" if abs(d) > tolerance else "tab:blue" for d in deviation]
        ax.barh(ordered["territory_id"].astype(str), deviation * 100, color=colours)
        ax.axvline(tolerance * 100, color="grey", linestyle="--")
        ax.axvline(-tolerance * 100, color="grey", linestyle="--")
        ax.set_title(f"{criterion}: % from mean")
    return _png(figure)


def _tier_mix(territories: pd.DataFrame) -> bytes:
    figure, ax = plt.subplots(figsize=(10, 4))
    ordered = territories.sort_values("territory_id")
    bottom = pd.Series(0.0, index=ordered.index)
    for column, colour in (("a_count", "tab:green"), ("b_count", "tab:orange"), ("c_count", "tab:grey")):
        ax.bar(ordered["territory_id"].astype(str), ordered[column], bottom=bottom, color=colour,
               label=column[0].upper())
        bottom += ordered[column]
    ax.set_title("Tier mix per territory")
    ax.legend()
    ax.tick_params(axis="x", rotation=90)
    return _png(figure)


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:,.3f}", border=0, classes="t")


def build_report(con, tolerance: float) -> Report:
    """Read the plan and monitor tables (read-only connection) and render the report."""
    territories = read_frame(con, "select * from territories")
    accounts = read_frame(con, "select a.territory_id, f.latitude, f.longitude from territory_assignments a "
                               "join account_features f using (account_id)")
    charts = {"territory_map": _map(accounts, territories), "balance": _balance(territories, tolerance),
              "tier_mix": _tier_mix(territories)}
    sections = [("Monitor status", _monitor_status(con)), ("KPIs by tier", _kpis(con))]
    body = "".join(
        f'<h2>{html.escape(title)}</h2><img alt="{name}" src="{data_uri(png)}">'
        for title, name, png in (("Territory map", "territory_map", charts["territory_map"]),
                                 ("Balance per criterion", "balance", charts["balance"]),
                                 ("Tier mix", "tier_mix", charts["tier_mix"]))
    ) + "".join(f"<h2>{html.escape(title)}</h2>{content}" for title, content in sections)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Territory report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}} img{{max-width:100%}}
table.t{{border-collapse:collapse}} .t td,.t th{{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}}</style>
</head><body><h1>Territory report</h1>
<p>{len(territories)} territories ({html.escape(str(territories['basis'].iloc[0]))}), {len(accounts):,} accounts;
balance tolerance {tolerance:.0%}.</p>{body}</body></html>"""
    return Report(page, charts)


def _monitor_status(con) -> str:
    parts = []
    for table, label in (("monitor_score_drift", "score and feature drift"), ("monitor_coverage", "A-tier coverage"),
                         ("monitor_sla", "SLA compliance")):
        if table_exists(con, table):
            counts = read_frame(con, f"select status, count(*) as n from {table} group by 1 order by 1")
            parts.append(f"<h3>{label}</h3>{_table(counts)}")
    if table_exists(con, "rebalance_proposals"):
        open_proposals = read_frame(con, """
            select proposal_id, count(*) as moves, any_value(reaches_tolerance) as reaches_tolerance
            from rebalance_proposals group by 1 order by 1""")
        parts.append(f"<h3>rebalance proposals</h3>{_table(open_proposals)}")
    return "".join(parts)


def _kpis(con) -> str:
    if not table_exists(con, "kpi_by_tier"):
        return "<p>no KPI marts yet</p>"
    by_tier = read_frame(con, f"select tier, {', '.join(KPI_REPORT_COLUMNS)} from kpi_by_tier order by tier")
    # Without a model trained this run (prior weights or the champion), nothing was held out: say so.
    in_sample = read_frame(con, "select count(*) as n from score_model_metrics where split = 'in_sample'").iloc[0]["n"]
    label = "in_sample_conversion_rate" if in_sample else "held_out_conversion_rate"
    lift = read_frame(con, f"select tier, conversion_rate as {label} from tier_lift order by tier")
    window = read_frame(con, "select max(window_days) as days, max(as_of_date) as as_of, "
                             "count(outcome_window_days) as windowed from kpi_by_tier").iloc[0]
    outcomes = "" if window["windowed"] else (" (win rate and won amount over every outcome on record: some "
                                              "close dates are missing)")
    note = (f"<p>Rates over the {window['days']} days up to {pd.Timestamp(window['as_of']):%Y-%m-%d}{outcomes}; "
            "forecast Brier grades predictions made before each close (blank until outcomes close after a "
            "scored run); CAC payback needs an acquisition_cost column. Per territory and rep: "
            "<code>kpi_by_territory</code>, <code>kpi_by_rep</code>.</p>")
    return note + _table(by_tier.merge(lift, on="tier", how="left"))
