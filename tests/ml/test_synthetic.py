"""Tests for the synthetic CRM export: contract shape, integrity, determinism and the recorded latent truth."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from ml import synthetic
from ml.contract import ACCOUNTS, TABLES
from ml.synthetic import generate_export
from ml.us_cities import US_CITIES

AS_OF = date(2026, 6, 30)
AS_OF_TS = datetime(2026, 6, 30)
N_ACCOUNTS = 2000
# Small chunks so the shared export crosses chunk boundaries (ids, offsets, appends).
CHUNK = 700


@dataclass
class Export:
    out: Path
    summary: dict
    tables: dict[str, pl.DataFrame]
    truth: pl.DataFrame
    weights: dict
    progress: list[tuple[str, float]]


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Export:
    out = tmp_path_factory.mktemp("export")
    calls: list[tuple[str, float]] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(synthetic, "CHUNK_ACCOUNTS", CHUNK)
        summary = generate_export(
            out, n_accounts=N_ACCOUNTS, seed=11, as_of=AS_OF, progress=lambda s, f: calls.append((s, f)),
            orphan_share=0.0,
        )
    return Export(
        out=out,
        summary=summary,
        tables={t.name: pl.read_parquet(out / f"{t.name}.parquet") for t in TABLES},
        truth=pl.read_parquet(out / "_truth" / "account_truth.parquet"),
        weights=json.loads((out / "_truth" / "truth.json").read_text()),
        progress=calls,
    )


def _closed_opportunities(export: Export) -> pl.DataFrame:
    stage = pl.col("stage").str.to_lowercase()
    return (
        export.tables["opportunities"]
        .filter(stage.str.contains("won|lost"))
        .with_columns(won=stage.str.contains("won"))
        .join(export.truth, on="account_id")
    )


def test_same_seed_writes_identical_files_and_another_seed_differs(tmp_path):
    first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((first, 3), (second, 3), (other, 4)):
        generate_export(out, n_accounts=500, seed=seed, as_of=AS_OF)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert len(files) == len(TABLES) + 2
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert not pl.read_parquet(first / "accounts.parquet").equals(pl.read_parquet(other / "accounts.parquet"))
    assert not pl.read_parquet(first / "engagement_events.parquet").equals(
        pl.read_parquet(other / "engagement_events.parquet")
    )


def test_every_file_has_exactly_the_contract_columns(export):
    for spec in TABLES:
        expected = list(spec.columns)
        if spec is ACCOUNTS:
            expected += ["ownership", "it_budget_index"]
        assert export.tables[spec.name].columns == expected, spec.name


def test_summary_reports_rows_paths_and_as_of(export):
    assert export.summary["as_of"] == "2026-06-30"
    for spec in TABLES:
        assert export.summary["rows"][spec.name] == export.tables[spec.name].height
        assert Path(export.summary["paths"][spec.name]) == export.out / f"{spec.name}.parquet"
    assert export.summary["rows"]["accounts"] == N_ACCOUNTS
    assert all(Path(p).exists() for p in export.summary["truth_paths"].values())
    assert [f for s, f in export.progress if s == "account_chunks"] == pytest.approx([0.35, 0.7, 1.0])


def test_progress_is_reported_per_chunk_and_nothing_is_printed(tmp_path, capsys, monkeypatch):
    calls: list[tuple[str, float]] = []
    monkeypatch.setattr(synthetic, "CHUNK_ACCOUNTS", 100)
    generate_export(tmp_path, n_accounts=250, progress=lambda s, f: calls.append((s, f)))
    chunk_fractions = [f for s, f in calls if s == "account_chunks"]
    assert chunk_fractions == pytest.approx([0.4, 0.8, 1.0])
    assert ("accounts", 1.0) in calls
    assert capsys.readouterr().out == ""


def test_keys_are_unique_and_well_formed(export):
    for spec in TABLES:
        if spec.key is None:
            continue
        keys = export.tables[spec.name][spec.key]
        assert keys.null_count() == 0, spec.name
        assert keys.n_unique() == keys.len(), spec.name
    assert export.tables["accounts"]["account_id"].str.contains(r"^A\d{7}$").all()
    assert export.tables["reps"]["rep_id"].str.contains(r"^R\d{3}$").all()


def test_child_rows_point_to_existing_accounts(export):
    accounts = set(export.tables["accounts"]["account_id"])
    for spec in TABLES:
        if spec.account_ref:
            refs = export.tables[spec.name]["account_id"]
            assert refs.len() > 0, spec.name
            assert set(refs) <= accounts, spec.name


def test_event_contacts_belong_to_the_event_account(export):
    first_party = export.tables["engagement_events"].filter(pl.col("source") == "first_party")
    with_contact = first_party.filter(pl.col("contact_id").is_not_null())
    joined = with_contact.join(
        export.tables["contacts"].select("contact_id", contact_account="account_id"), on="contact_id", how="left"
    )
    assert (joined["account_id"] == joined["contact_account"]).all()
    assert 0.05 < first_party["contact_id"].null_count() / first_party.height < 0.8


def test_parents_are_existing_same_industry_accounts(export):
    accounts = export.tables["accounts"]
    children = accounts.filter(pl.col("parent_account_id").is_not_null())
    assert 0.03 < children.height / accounts.height < 0.07
    parents = children.join(
        accounts.select(parent_account_id="account_id", parent_industry="industry"),
        on="parent_account_id",
        how="left",
    )
    assert (parents["industry"] == parents["parent_industry"]).all()
    assert (children["parent_account_id"] != children["account_id"]).all()


def test_owners_activities_and_managers_reference_reps(export):
    accounts, reps = export.tables["accounts"], export.tables["reps"]
    owners = accounts["owner_rep_id"].drop_nulls()
    assert 0.65 < owners.len() / accounts.height < 0.75
    assert set(owners) <= set(reps.filter(pl.col("role") == "AE")["rep_id"])
    touches = export.tables["activities"].join(accounts.select("account_id", "owner_rep_id"), on="account_id")
    owned = touches.filter(pl.col("owner_rep_id").is_not_null())
    assert (owned["rep_id"] == owned["owner_rep_id"]).all()
    # An unowned account is touched once, by an inbound SDR, and only when it is new.
    unowned = touches.filter(pl.col("owner_rep_id").is_null())
    assert unowned.height > 0 and unowned["account_id"].is_unique().all()
    assert set(unowned["rep_id"]) <= set(reps.filter(pl.col("role") == "SDR")["rep_id"])
    assert set(touches["activity_type"]) == {"call", "email", "meeting"}
    assert set(reps["manager_id"].drop_nulls()) <= set(reps["rep_id"])


def test_new_accounts_get_a_first_touch_after_creation_faster_for_likelier_buyers(export):
    accounts = export.tables["accounts"].select("account_id", "created_at")
    activities = export.tables["activities"].join(accounts, on="account_id")
    assert (activities["occurred_at"] >= activities["created_at"]).all()
    new = accounts.filter(pl.col("created_at") > AS_OF_TS - timedelta(days=synthetic.HISTORY_DAYS))
    first = activities.group_by("account_id").agg(pl.col("occurred_at").min().alias("first_touch_at"))
    touched = (
        new.join(first, on="account_id", how="left").join(export.truth, on="account_id")
        .with_columns(hours=(pl.col("first_touch_at") - pl.col("created_at")).dt.total_seconds() / 3600)
    )
    # A few percent are never touched; most are within a working day.
    assert 0.94 < touched["hours"].is_not_null().mean() < 0.995
    assert 0.8 < (touched["hours"] <= 24).mean() < 0.95
    likeliest = touched["true_probability"] >= touched["true_probability"].quantile(0.8)
    assert touched.filter(likeliest)["hours"].median() < 2 < touched.filter(~likeliest)["hours"].median()


def test_reps_follow_the_staffing_rules(export):
    reps = export.tables["reps"]
    ae, sdr = reps.filter(pl.col("role") == "AE"), reps.filter(pl.col("role") == "SDR")
    assert (ae.height, sdr.height) == (N_ACCOUNTS // 250, N_ACCOUNTS // 500)
    assert set(ae["capacity_accounts"]) == {round(N_ACCOUNTS / ae.height * 1.2)}
    assert set(sdr["capacity_accounts"]) == {round(N_ACCOUNTS / sdr.height * 1.2)}
    assert (ae["start_date"] > AS_OF - timedelta(days=60)).sum() == 2
    west = reps.filter(pl.col("region") == "West")
    assert (west["longitude"] < -104).all()
    assert (reps.filter(pl.col("region") != "West")["longitude"] >= -104).all()


def test_accounts_sit_near_real_cities_with_plausible_postal_codes(export):
    accounts = export.tables["accounts"]
    cities = pl.DataFrame(
        [(c.name, c.state, c.latitude, c.longitude, c.zip3) for c in US_CITIES],
        schema=["city", "state", "city_lat", "city_lon", "zip3"],
        orient="row",
    )
    placed = accounts.join(cities, on=["city", "state"], how="left")
    assert placed["city_lat"].null_count() == 0
    km = 111 * np.hypot(
        placed["latitude"] - placed["city_lat"],
        (placed["longitude"] - placed["city_lon"]) * np.cos(np.radians(placed["city_lat"])),
    )
    assert km.max() < 50
    assert (accounts["country"] == "US").all()
    assert accounts["postal_code"].str.contains(r"^\d{5}$").all()
    assert (placed["postal_code"].str.slice(0, 3) == placed["zip3"]).all()
    assert accounts["postal_code"].str.starts_with("0").any()
    # Population weighting: the largest metro holds far more accounts than the smallest towns.
    counts = accounts["city"].value_counts()
    assert counts.filter(pl.col("city") == "New York")["count"].item() > 5 * counts["count"].median()


def test_account_attributes_are_realistic(export):
    accounts = export.tables["accounts"]
    assert accounts["industry"].n_unique() == 10
    assert accounts["employees"].min() >= 1
    log_size = np.log(accounts["employees"].to_numpy())
    log_revenue = np.log(accounts["annual_revenue"].to_numpy())
    assert np.corrcoef(log_size, log_revenue)[0, 1] > 0.8
    techs = set(accounts["technologies"].drop_nulls().str.split(";").explode())
    assert techs == {name for name, _, _ in synthetic.TECHNOLOGIES}
    assert set(accounts["ownership"]) == {"public", "private", "pe_backed", "nonprofit"}
    assert 0.05 < accounts["it_budget_index"].null_count() / accounts.height < 0.2


def test_events_span_the_deal_window_and_the_lead_before_it(export):
    events = export.tables["engagement_events"]
    assert events["occurred_at"].max() < AS_OF_TS
    reach = timedelta(days=synthetic.HISTORY_DAYS + synthetic.EVENT_LEAD_DAYS)
    assert events["occurred_at"].min() >= AS_OF_TS - reach
    # Steady interest: about as many events in the lead period before the first deal as its length implies.
    early = (events["occurred_at"] < AS_OF_TS - timedelta(days=synthetic.HISTORY_DAYS)).mean()
    assert abs(early - synthetic.EVENT_LEAD_DAYS / (synthetic.HISTORY_DAYS + synthetic.EVENT_LEAD_DAYS)) < 0.02
    assert set(events["event_type"]) == set(synthetic.EVENT_TYPES)
    topics = events.filter(pl.col("event_type") == "intent_topic")
    others = events.filter(pl.col("event_type") != "intent_topic")
    assert (topics["source"] == "third_party").all() and topics["topic"].null_count() == 0
    assert topics["contact_id"].null_count() == topics.height
    assert topics["value"].is_between(1, 100).all()
    assert (others["source"] == "first_party").all() and others["topic"].null_count() == others.height
    assert (others["value"] == 1).all()


def test_event_volume_and_mix_follow_latent_intent(export):
    per_account = (
        export.truth.join(
            export.tables["engagement_events"].group_by("account_id").agg(
                events=pl.len(), pricing=(pl.col("event_type") == "pricing_page_view").sum()
            ),
            on="account_id",
            how="left",
        )
        .fill_null(0)
        .with_columns(quintile=pl.col("true_intent_logit").rank("ordinal").mul(5).floordiv(N_ACCOUNTS + 1))
    )
    assert 0.05 < (per_account["events"] == 0).mean() < 0.16
    # Default-size exports should land around 250k-650k events for 5,000 accounts.
    assert 50 < per_account["events"].mean() < 130
    by_quintile = per_account.group_by("quintile").agg(
        pl.col("events").mean(), pricing_share=pl.col("pricing").sum() / pl.col("events").sum()
    ).sort("quintile")
    assert by_quintile["events"][4] > 3 * by_quintile["events"][1]
    assert by_quintile["pricing_share"][4] > by_quintile["pricing_share"][1] + 0.05


def test_won_rate_follows_true_probability(export):
    closed = _closed_opportunities(export)
    assert closed.height > 300
    assert 0.12 < closed["won"].mean() < 0.32
    ranked = closed.with_columns(
        quintile=pl.col("true_probability").rank("ordinal").mul(5).floordiv(closed.height + 1)
    )
    rates = ranked.group_by("quintile").agg(pl.col("won").mean(), pl.col("true_probability").mean()).sort(
        "quintile"
    )
    assert rates["won"][4] > rates["won"][0] + 0.25
    # Bernoulli outcomes: each quintile's won rate is close to its mean true probability.
    assert (rates["won"] - rates["true_probability"]).abs().max() < 0.1


def test_opportunity_stages_and_dates(export):
    opportunities = export.tables["opportunities"]
    assert 0.5 < opportunities["account_id"].n_unique() / N_ACCOUNTS < 0.75
    per_account = opportunities.group_by("account_id").len()["len"]
    # New business, expansions and renewals: about 2.6 deals per account with any, so held-out windows are large.
    assert per_account.max() <= 5 and 2.4 < per_account.mean() < 2.8
    canonical = {"Closed Won", "Closed Lost", "Prospecting", "Negotiation"}
    variant_share = (~opportunities["stage"].is_in(canonical)).mean()
    assert 0.005 < variant_share < 0.1
    open_ = opportunities.filter(pl.col("stage").is_in(["Prospecting", "Negotiation"]))
    closed = opportunities.filter(~pl.col("stage").is_in(["Prospecting", "Negotiation"]))
    assert open_.height > 0 and open_["closed_at"].null_count() == open_.height
    assert (closed["closed_at"] > closed["created_at"]).all()
    assert closed["closed_at"].max() < AS_OF_TS
    assert opportunities["created_at"].min() >= AS_OF_TS - timedelta(days=365)
    assert (opportunities["amount"] > 0).all()


def test_signals_cover_part_of_accounts_and_track_intent(export):
    signals = export.tables["account_signals"]
    intent = signals.filter(pl.col("signal") == "intent_score").join(export.truth, on="account_id")
    rank = signals.filter(pl.col("signal") == "web_traffic_rank")
    assert 0.55 < intent.height / N_ACCOUNTS < 0.65 and (intent["layer"] == "engagement").all()
    assert 0.45 < rank.height / N_ACCOUNTS < 0.55 and (rank["layer"] == "fit").all()
    assert intent["value"].is_between(0, 100).all()
    assert np.corrcoef(intent["value"], intent["true_intent_logit"])[0, 1] > 0.6
    assert signals["observed_at"].max() < AS_OF_TS


def test_truth_weights_reproduce_the_recorded_logits(export):
    weights, truth = export.weights, export.truth
    assert weights["seed"] == 11 and weights["as_of"] == "2026-06-30"
    fit = weights["fit"]
    accounts = export.tables["accounts"].join(truth, on="account_id")
    tech_effect = sum(
        accounts["technologies"].fill_null("").str.split(";").list.contains(name).cast(pl.Float64) * effect
        for name, effect in fit["technologies"].items()
    )
    expected_fit = (
        accounts["industry"].replace_strict(fit["industry"])
        + fit["log_employees"] * (np.log(accounts["employees"]) - fit["log_employees_center"])
        + tech_effect
        + accounts["ownership"].replace_strict(fit["ownership"])
    )
    assert np.allclose(expected_fit, accounts["true_fit_logit"])
    logit = weights["intercept"] + truth["true_fit_logit"] + truth["true_intent_logit"] + truth["true_persona_logit"]
    assert np.allclose(1 / (1 + np.exp(-logit)), truth["true_probability"])
    assert 0.15 < truth["true_probability"].mean() < 0.25
    assert weights["mean_true_probability"] == pytest.approx(truth["true_probability"].mean())


def test_persona_truth_counts_engaged_icp_contacts_in_the_export(export):
    icp_titles = export.weights["persona"]["icp_titles"]
    engaged_icp = (
        export.tables["contacts"]
        .filter(pl.col("title").is_in(icp_titles))
        .join(export.tables["engagement_events"].select("contact_id").unique(), on="contact_id", how="semi")
        .group_by("account_id")
        .len("engaged")
    )
    joined = export.truth.join(engaged_icp, on="account_id", how="left").fill_null(0)
    weight = export.weights["persona"]["weight_per_engaged_icp_contact"]
    assert np.allclose(joined["true_persona_logit"], weight * joined["engaged"])
    assert joined["engaged"].max() >= 2


def test_csv_export_matches_parquet_and_reads_with_duckdb(tmp_path):
    parquet_dir, csv_dir = tmp_path / "parquet", tmp_path / "csv"
    generate_export(parquet_dir, n_accounts=500, seed=5, as_of=AS_OF)
    summary = generate_export(csv_dir, n_accounts=500, seed=5, file_format="csv", as_of=AS_OF)
    con = duckdb.connect()
    for spec in TABLES:
        csv_path, parquet_path = csv_dir / f"{spec.name}.csv", parquet_dir / f"{spec.name}.parquet"
        as_text = con.sql(f"select * from read_csv('{csv_path}', all_varchar = true)").pl()
        from_parquet = con.sql(f"select * from read_parquet('{parquet_path}')").pl()
        assert as_text.height == from_parquet.height == summary["rows"][spec.name], spec.name
        assert as_text.columns == from_parquet.columns, spec.name
        if spec.key:
            assert as_text[spec.key].to_list() == from_parquet[spec.key].to_list(), spec.name
    postal = con.sql(f"select postal_code from read_csv('{csv_dir / 'accounts.csv'}', all_varchar = true)").pl()
    assert postal["postal_code"].str.contains(r"^\d{5}$").all()
    typed = con.sql(f"select occurred_at from read_csv('{csv_dir / 'engagement_events.csv'}')").pl()
    assert typed.schema["occurred_at"] == pl.Datetime("us")


def test_switching_format_replaces_the_previous_export(tmp_path):
    generate_export(tmp_path, n_accounts=200)
    generate_export(tmp_path, n_accounts=200, file_format="csv")
    assert not list(tmp_path.glob("*.parquet"))
    assert len(list(tmp_path.glob("*.csv"))) == len(TABLES)


def test_unknown_format_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="file_format"):
        generate_export(tmp_path, n_accounts=10, file_format="xlsx")


def test_orphan_rows_point_to_deleted_accounts_only(tmp_path) -> None:
    generate_export(tmp_path, n_accounts=1500, seed=3, as_of=AS_OF, orphan_share=0.01)
    accounts = set(pl.read_parquet(tmp_path / "accounts.parquet")["account_id"])
    for table in ("engagement_events", "activities"):
        ids = pl.read_parquet(tmp_path / f"{table}.parquet")["account_id"]
        orphans = ids.filter(~ids.is_in(list(accounts)))
        assert 0.005 < orphans.len() / ids.len() < 0.02, table
        assert orphans.str.starts_with(synthetic.DELETED_ACCOUNT_PREFIX).all()
    contacts = pl.read_parquet(tmp_path / "contacts.parquet")["account_id"]
    assert contacts.is_in(list(accounts)).all()
