"""Importer tests: the two real exports land in the contract with their quirks handled, errors name the cause."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from ml.importers import IMPORTERS, SourceError, import_maven_crm, import_olist_funnel, run_importer

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MAVEN = SHARED_DATA / "maven_crm"
OLIST = SHARED_DATA / "olist_marketing_funnel"

CLOSED_DEAL_ONLY = {
    "seller_id", "sdr_id", "sr_id", "won_date", "business_segment", "lead_type", "lead_behaviour_profile",
    "has_company", "has_gtin", "average_stock", "business_type", "declared_product_catalog_size",
    "declared_monthly_revenue", "seller_zip_code_prefix", "seller_city", "seller_state",
}


def need(folder: Path) -> None:
    if not folder.is_dir():
        pytest.skip(f"real dataset folder {folder} is absent")


def read(folder: Path, name: str) -> pl.DataFrame:
    return pl.read_csv(folder / name, infer_schema=False)


def write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def maven(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    need(MAVEN)
    out = tmp_path_factory.mktemp("maven")
    return import_maven_crm(MAVEN, out), out


@pytest.fixture(scope="module")
def olist(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    need(OLIST)
    out = tmp_path_factory.mktemp("olist")
    return import_olist_funnel(OLIST, out), out


# --- Maven CRM ---------------------------------------------------------------------------------------

def test_maven_counts_reconcile(maven: tuple[dict, Path]) -> None:
    summary, out = maven
    assert summary["rows_read"] == {
        "accounts.csv": 85, "products.csv": 7, "sales_teams.csv": 35, "sales_pipeline.csv": 8800,
    }
    assert summary["rows_written"] == {"accounts.csv": 85, "opportunities.csv": 8800, "reps.csv": 35}
    assert sorted(p.name for p in out.iterdir()) == ["accounts.csv", "opportunities.csv", "reps.csv"]


def test_maven_blank_accounts_are_kept_and_explained(maven: tuple[dict, Path]) -> None:
    summary, out = maven
    opps = read(out, "opportunities.csv")
    blank = opps.filter(pl.col("account_id").is_null())
    assert blank.height == 1425
    assert set(blank["stage"]) == {"Engaging", "Prospecting"}
    assert any("1,425 opportunities have no account" in note and "rejected_rows" in note
               for note in summary["notes"])


def test_maven_accounts_fix_typos_units_and_parents(maven: tuple[dict, Path]) -> None:
    accounts = read(maven[1], "accounts.csv")
    assert accounts["account_id"].n_unique() == 85
    assert "technolgy" not in set(accounts["industry"])
    assert accounts.filter(pl.col("industry") == "technology").height == 12
    assert "Philipines" not in set(accounts["country"])
    assert accounts.filter(pl.col("country") == "Philippines")["account_name"].to_list() == ["Bioholding"]
    rows = {r["account_name"]: r for r in accounts.iter_rows(named=True)}
    assert rows["Acme Corporation"]["annual_revenue"] == "1100040000"  # 1,100.04 million
    assert rows["Gekko & Co"]["account_id"] == "gekko-co"
    assert rows["Bluth Company"]["parent_account_id"] == "acme-corporation"
    assert rows["Acme Corporation"]["parent_account_id"] is None
    assert rows["dambase"]["year_established"] == "1995"
    assert set(accounts["parent_account_id"].drop_nulls()) <= set(accounts["account_id"])


def test_maven_owner_is_the_agent_with_most_opportunities(maven: tuple[dict, Path]) -> None:
    accounts = read(maven[1], "accounts.csv")
    reps = read(maven[1], "reps.csv")
    assert set(accounts["owner_rep_id"]) <= set(reps["rep_id"])
    pipeline = read(MAVEN, "sales_pipeline.csv").filter(pl.col("account").is_not_null())
    load = pipeline.group_by("account", "sales_agent").len()
    best = load.group_by("account").agg(pl.col("len").max().alias("best"))
    owner_load = (
        accounts.join(reps.select("rep_id", "name"), left_on="owner_rep_id", right_on="rep_id")
        .join(load, left_on=["account_name", "name"], right_on=["account", "sales_agent"])
        .join(best, left_on="account_name", right_on="account")
    )
    assert owner_load.height == 85
    assert (owner_load["len"] == owner_load["best"]).all()


def test_maven_amounts_use_close_value_or_list_price(maven: tuple[dict, Path]) -> None:
    opps = read(maven[1], "opportunities.csv").with_columns(pl.col("amount").cast(pl.Float64))
    assert opps["amount"].null_count() == 0  # every product resolved, GTXPro included
    assert "GTXPro" not in set(opps["product"])
    lost = opps.filter(pl.col("stage") == "Lost")
    assert lost.height == 2473 and (lost["amount"] > 0).all()
    assert lost.filter(pl.col("product") == "GTX Pro")["amount"].unique().to_list() == [4821.0]
    source = read(MAVEN, "sales_pipeline.csv").select("opportunity_id", "close_value")
    won = opps.filter(pl.col("stage") == "Won").join(source, on="opportunity_id")
    assert won.height == 4238
    assert (won["amount"] == won["close_value"].cast(pl.Float64)).all()
    assert set(won["amount_source"]) == {"close_value"}


def test_maven_dates_become_iso(maven: tuple[dict, Path]) -> None:
    opps = read(maven[1], "opportunities.csv")
    first = opps.filter(pl.col("opportunity_id") == "1C1I7A6R").row(0, named=True)
    assert (first["created_at"], first["closed_at"]) == ("2016-10-20", "2017-03-01")
    prospecting = opps.filter(pl.col("stage") == "Prospecting")
    assert prospecting["created_at"].null_count() == 500
    assert opps["created_at"].drop_nulls().str.contains(r"^\d{4}-\d{2}-\d{2}$").all()


def test_maven_reps_from_sales_teams(maven: tuple[dict, Path]) -> None:
    reps = read(maven[1], "reps.csv")
    assert reps.height == 35 and set(reps["role"]) == {"AE"}
    anna = reps.filter(pl.col("rep_id") == "anna-snelling").row(0, named=True)
    assert (anna["name"], anna["region"], anna["manager_id"]) == ("Anna Snelling", "Central", "dustin-brinkmann")
    assert reps["manager_id"].n_unique() == 6


# --- Olist marketing funnel ---------------------------------------------------------------------------

def test_olist_one_account_and_opportunity_per_mql(olist: tuple[dict, Path]) -> None:
    summary, out = olist
    assert summary["rows_read"] == {
        "olist_marketing_qualified_leads_dataset.csv": 8000,
        "olist_closed_deals_dataset.csv": 842,
        "olist_sellers_dataset.csv": 3095,
    }
    accounts, opps = read(out, "accounts.csv"), read(out, "opportunities.csv")
    assert accounts.height == opps.height == 8000
    assert opps["stage"].value_counts().sort("stage").rows() == [("lost", 7158), ("won", 842)]
    assert (opps["opportunity_id"] == opps["account_id"]).all()
    deals = read(OLIST, "olist_closed_deals_dataset.csv")
    assert set(opps.filter(pl.col("stage") == "won")["account_id"]) == set(deals["mql_id"])


def test_olist_accounts_carry_no_outcome_attributes(olist: tuple[dict, Path]) -> None:
    accounts = read(olist[1], "accounts.csv")
    assert accounts.columns == ["account_id", "created_at", "origin", "landing_page_id"]
    assert not CLOSED_DEAL_ONLY & set(accounts.columns)
    origins = dict(accounts["origin"].value_counts().rows())
    assert origins["missing"] == 60 and origins["unknown"] == 1099
    assert accounts["origin"].null_count() == 0


def test_olist_closed_at_and_amount(olist: tuple[dict, Path]) -> None:
    opps = read(olist[1], "opportunities.csv")
    assert opps.filter(pl.col("stage") == "lost")["closed_at"].null_count() == 7158
    won = opps.filter(pl.col("stage") == "won")
    assert won["closed_at"].null_count() == 0
    assert won.filter(pl.col("closed_at").str.ends_with(" 03:00:00")).height == 49  # kept as written
    early = opps.filter(pl.col("opportunity_id") == "b91cf8812365f50ff4bda4bcd6206b05").row(0, named=True)
    assert (early["created_at"], early["closed_at"]) == ("2018-03-08", "2018-03-08 00:00:00")
    assert (won["closed_at"].str.slice(0, 10) >= won["created_at"]).all()
    amounts = opps["amount"].drop_nulls().cast(pl.Float64)
    assert amounts.len() == 45 and (amounts > 0).all() and amounts.max() == 50_000_000
    assert opps.filter(pl.col("stage") == "lost")["amount"].null_count() == 7158


def test_olist_reps_one_per_id_with_majority_role_and_region(olist: tuple[dict, Path]) -> None:
    reps = read(olist[1], "reps.csv")
    deals = read(OLIST, "olist_closed_deals_dataset.csv")
    sdr, sr = set(deals["sdr_id"]), set(deals["sr_id"])
    assert (len(sdr), len(sr), len(sdr & sr)) == (32, 22, 13)
    assert reps["rep_id"].is_unique().all() and set(reps["rep_id"]) == sdr | sr
    roles = dict(reps.select("rep_id", "role").rows())
    assert all(roles[r] == "SDR" for r in sdr - sr) and all(roles[r] == "AE" for r in sr - sdr)
    assert roles["4b339f9567d060bcea4f5136b9f5949e"] == "SDR"  # 140 deals as SDR, 9 as SR
    assert roles["9ae085775a198122c5586fa830ff7f2b"] == "AE"  # 1 as SDR, 51 as SR
    assert dict(reps["role"].value_counts().rows()) == {"SDR": 29, "AE": 12}

    sellers = read(OLIST, "olist_sellers_dataset.csv").select("seller_id", "seller_state")
    worked = pl.concat([deals.select(pl.col("sdr_id").alias("rep_id"), "mql_id", "seller_id"),
                        deals.select(pl.col("sr_id").alias("rep_id"), "mql_id", "seller_id")]).unique()
    expected = (
        worked.join(sellers, on="seller_id")
        .group_by("rep_id", "seller_state").len()
        .sort(["rep_id", "len", "seller_state"], descending=[False, True, False])
        .group_by("rep_id", maintain_order=True).first()
    )
    regions = dict(reps.select("rep_id", "region").rows())
    assert expected.height == 28 and sum(r is None for r in regions.values()) == 13
    assert all(regions[row["rep_id"]] == row["seller_state"] for row in expected.iter_rows(named=True))


# --- Synthetic folders: errors and rules -------------------------------------------------------------

MAVEN_FILES = {
    "accounts.csv": "account,sector,year_established,revenue,employees,office_location,subsidiary_of\n"
                    "Alpha Inc,technolgy,2001,2.5,10,Philipines,\nBeta,retail,1999,1,5,United States,Alpha Inc\n",
    "products.csv": "product,series,sales_price\nGTX Pro,GTX,100\n",
    "sales_teams.csv": "sales_agent,manager,regional_office\nAnn Lee,Max Boss,East\nBob Ray,Max Boss,West\n",
    "sales_pipeline.csv": "opportunity_id,sales_agent,product,account,deal_stage,engage_date,close_date,"
                          "close_value\n"
                          "O1,Bob Ray,GTXPro,Alpha Inc,Won,1/2/2017,3/4/2017,90\n"
                          "O2,Bob Ray,gtx pro,Alpha Inc,Lost,2/5/2017,3/5/2017,0\n"
                          "O3,Ann Lee,GTX Pro,Alpha Inc,Engaging,2/1/2017,,\n"
                          "O4,Ann Lee,GTX Pro,Alpha Inc,Prospecting,,,\n"
                          "O5,Ann Lee,GTX Pro,,Prospecting,,,\n",
}


def maven_folder(root: Path, **overrides: str | None) -> Path:
    folder = root / "maven_src"
    for name, text in MAVEN_FILES.items():
        text = overrides.get(name.removesuffix(".csv"), text)
        if text is not None:
            write(folder, name, text)
    return folder


def test_synthetic_maven_rules(tmp_path: Path) -> None:
    summary = run_importer("maven-crm", maven_folder(tmp_path), tmp_path / "out")
    accounts = read(tmp_path / "out", "accounts.csv")
    alpha = accounts.filter(pl.col("account_id") == "alpha-inc").row(0, named=True)
    # Ann and Bob tie on two opportunities; Bob engaged Alpha last (2/5/2017), so he wins over the
    # alphabetically first Ann.
    assert alpha["owner_rep_id"] == "bob-ray"
    assert (alpha["industry"], alpha["country"], alpha["annual_revenue"]) == (
        "technology", "Philippines", "2500000")
    opps = read(tmp_path / "out", "opportunities.csv")
    assert opps.select("opportunity_id", "amount", "amount_source").rows() == [
        ("O1", "90", "close_value"), ("O2", "100", "list_price"), ("O3", "100", "list_price"),
        ("O4", "100", "list_price"), ("O5", "100", "list_price"),
    ]
    assert summary["rows_written"]["opportunities.csv"] == 5
    assert any("1 opportunities have no account (1 Prospecting)" in note for note in summary["notes"])
    assert any("1 accounts had a tie" in note for note in summary["notes"])


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"missing source file sales_teams\.csv.*sales_agent, manager"):
        import_maven_crm(maven_folder(tmp_path, sales_teams=None), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    pipeline = MAVEN_FILES["sales_pipeline.csv"].replace(",close_value\n", ",value\n", 1)
    with pytest.raises(SourceError, match=r"sales_pipeline\.csv is missing column\(s\) close_value"):
        import_maven_crm(maven_folder(tmp_path, sales_pipeline=pipeline), tmp_path / "out")

    olist = tmp_path / "olist_src"
    write(olist, "olist_marketing_qualified_leads_dataset.csv", "mql_id,first_contact_date,origin\nm1,2018-01-01,\n")
    write(olist, "olist_closed_deals_dataset.csv",
          "mql_id,seller_id,sdr_id,sr_id,won_date,declared_monthly_revenue\n")
    write(olist, "olist_sellers_dataset.csv", "seller_id,seller_state\n")
    with pytest.raises(SourceError, match=r"olist_marketing_qualified_leads_dataset\.csv is missing column\(s\) "
                                          r"landing_page_id"):
        import_olist_funnel(olist, tmp_path / "olist_out")


def test_ids_that_collide_are_refused(tmp_path: Path) -> None:
    accounts = MAVEN_FILES["accounts.csv"] + '"Alpha, Inc.",retail,2000,1,1,Peru,\n'
    with pytest.raises(SourceError, match=r"accounts\.csv: column account .*alpha-inc: Alpha Inc, Alpha, Inc\."):
        import_maven_crm(maven_folder(tmp_path, accounts=accounts), tmp_path / "out")


def test_output_folder_with_other_contract_files_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write(out, "contacts.csv", "contact_id,account_id\nc1,a1\n")
    with pytest.raises(SourceError, match=r"already holds contacts\.csv"):
        run_importer("maven-crm", maven_folder(tmp_path), out)
    assert not (out / "accounts.csv").exists()


def test_unknown_kind_lists_known_kinds(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown import kind 'hubspot'; known kinds: maven-crm, olist-funnel"):
        run_importer("hubspot", tmp_path, tmp_path / "out")
    assert set(IMPORTERS) == {"maven-crm", "olist-funnel"}
