"""The demo org's shape: schema, types, integrity, determinism, persistence."""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from sandbox.org import SCALES, arrow_schema, generate, load_into_duckdb, read_org, write_org
from sandbox.schema import OBJECTS, REFERENCE, snake

END = date(2026, 6, 30)


@pytest.fixture(scope="module")
def org():
    return generate("small", seed=7, end=END)


@pytest.fixture(scope="module")
def frames(org):
    return {k: t.to_pandas() for k, t in org.tables.items()}


def orphan_ids(org, obj: str, field: str) -> set[str]:
    return {
        i
        for d in org.truth["defects"]
        if d["object"] == obj and d["field"] == field and d["kind"] == "orphan_key"
        for i in d["ids"]
    }


def test_every_object_with_schema_columns_and_types(org):
    assert list(org.tables) == list(OBJECTS)
    for name, tbl in org.tables.items():
        assert tbl.schema.equals(arrow_schema(name)), name
        assert tbl.num_rows > 0, name
    ts = org.tables["Opportunity"].schema.field("CreatedDate").type
    assert ts == pa.timestamp("ms", tz="UTC")
    assert org.tables["Lead"].schema.field("MQL_Date__c").type == pa.date32()
    assert org.tables["Opportunity"].schema.field("IsWon").type == pa.bool_()


def test_small_scale_counts(org):
    n = SCALES["small"]
    assert org.tables["Opportunity"].num_rows >= n["opportunities"]
    assert 2000 <= org.tables["Opportunity"].num_rows <= 3200
    assert 30 <= org.tables["User"].num_rows <= 60
    hist = org.tables["OpportunityHistory"].num_rows / org.tables["Opportunity"].num_rows
    assert 4 <= hist <= 12


def test_required_fields_not_null_and_ids_unique(org, frames):
    for name, obj in OBJECTS.items():
        df = frames[name]
        assert df["Id"].is_unique, name
        assert df["Id"].str.len().eq(18).all(), name
        for f in obj.fields:
            if not f.nillable:
                assert df[f.name].notna().all(), f"{name}.{f.name}"


def test_audit_timestamps_ordered_and_before_as_of(org, frames):
    as_of = pd.Timestamp(org.as_of)
    for name, df in frames.items():
        assert (df["LastModifiedDate"] >= df["CreatedDate"]).all(), name
        assert (df["SystemModstamp"] >= df["LastModifiedDate"]).all(), name
        assert (df["SystemModstamp"] < as_of).all(), name
        assert (df["CreatedDate"] >= as_of - pd.Timedelta(days=365 * 12)).all(), name


def test_references_resolve_except_planted_orphans(org, frames):
    ids = {name: set(df["Id"]) for name, df in frames.items()}
    checked = 0
    for name, obj in OBJECTS.items():
        for f in obj.fields:
            if f.type != REFERENCE or not f.reference_to:
                continue
            df = frames[name]
            dangling = df[f.name].notna() & ~df[f.name].isin(ids[f.reference_to])
            bad = set(df.loc[dangling, "Id"])
            assert bad == orphan_ids(org, name, f.name), f"{name}.{f.name}"
            checked += 1
    assert checked >= 20
    for act in ("Task", "Event"):
        who = frames[act]["WhoId"].dropna()
        assert who.isin(ids["Contact"] | ids["Lead"]).all()
        what = frames[act]["WhatId"].dropna()
        assert what.isin(ids["Opportunity"]).all()


def test_users_hierarchy_and_attrition(frames):
    u = frames["User"]
    roles = frames["UserRole"].set_index("Id")
    vp = u[u["ManagerId"].isna()]
    assert len(vp) == 1
    mgr = u[u["ManagerId"].isin(vp["Id"])]
    reps = u[u["ManagerId"].isin(mgr["Id"])]
    assert len(mgr) >= 3 and len(reps) == len(u) - 1 - len(mgr)
    # reps report to a manager of their own region
    mgr_region = mgr.set_index("Id")["Region__c"]
    assert (reps["ManagerId"].map(mgr_region) == reps["Region__c"]).all()
    assert roles.loc[vp["UserRoleId"].iloc[0], "ParentRoleId"] is None or pd.isna(
        roles.loc[vp["UserRoleId"].iloc[0], "ParentRoleId"]
    )
    # attrition: inactive exactly when terminated, and nobody left still owns an open deal
    assert (u["IsActive"] == u["Termination_Date__c"].isna()).all()
    assert (~u["IsActive"]).sum() >= 2
    opp = frames["Opportunity"]
    open_owner = opp.loc[~opp["IsClosed"], "OwnerId"]
    inactive = set(u.loc[~u["IsActive"], "Id"])
    assert not open_owner.isin(inactive).any()


def test_line_items_sum_to_amount(org, frames):
    neg = {i for d in org.truth["defects"] if d["kind"] == "negative_amount" for i in d["ids"]}
    oli = frames["OpportunityLineItem"].groupby("OpportunityId")["TotalPrice"].sum()
    opp = frames["Opportunity"].set_index("Id")
    opp = opp[~opp.index.isin(neg)]
    diff = (opp["Amount"] - oli.reindex(opp.index)).abs()
    assert diff.max() < 0.011


def test_multi_currency_rates(frames):
    dcr = frames["DatedConversionRate"]
    assert set(dcr["IsoCode"]) == {"USD", "EUR", "GBP", "JPY"}
    assert (dcr.loc[dcr["IsoCode"] == "USD", "ConversionRate"] == 1.0).all()
    eur = dcr[dcr["IsoCode"] == "EUR"].sort_values("StartDate")
    assert eur["ConversionRate"].between(0.6, 1.3).all()
    # monthly rows chain: each NextStartDate is the following StartDate
    assert (eur["NextStartDate"].iloc[:-1].to_numpy() == eur["StartDate"].iloc[1:].to_numpy()).all()
    opp = frames["Opportunity"]
    acc = frames["Account"].set_index("Id")["CurrencyIsoCode"]
    joined = opp["AccountId"].map(acc)
    ok = joined.notna()
    assert (opp.loc[ok, "CurrencyIsoCode"] == joined[ok]).all()
    assert opp["CurrencyIsoCode"].nunique() == 4


def test_same_seed_same_org_other_seed_differs():
    a = generate(
        {
            "opportunities": 400,
            "leads": 900,
            "accounts": 200,
            "contacts": 500,
            "activities": 2000,
            "reps": 20,
        },
        seed=3,
        end=END,
    )
    b = generate(
        {
            "opportunities": 400,
            "leads": 900,
            "accounts": 200,
            "contacts": 500,
            "activities": 2000,
            "reps": 20,
        },
        seed=3,
        end=END,
    )
    c = generate(
        {
            "opportunities": 400,
            "leads": 900,
            "accounts": 200,
            "contacts": 500,
            "activities": 2000,
            "reps": 20,
        },
        seed=4,
        end=END,
    )
    for name in OBJECTS:
        assert a.tables[name].equals(b.tables[name]), name
    ta = {k: v for k, v in a.truth.items() if k != "generation_seconds"}
    tb = {k: v for k, v in b.truth.items() if k != "generation_seconds"}
    assert ta == tb
    assert not a.tables["Opportunity"].equals(c.tables["Opportunity"])


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="scale must be one of"):
        generate("huge")
    with pytest.raises(ValueError, match="unknown count keys"):
        generate({"opportunity": 10})
    with pytest.raises(ValueError, match="defect_rate"):
        generate("small", defect_rate=2)


def test_write_read_parquet_and_csv_round_trip(org, tmp_path):
    write_org(org, tmp_path / "pq")
    back = read_org(tmp_path / "pq")
    assert back.as_of == org.as_of
    assert back.truth["seed"] == 7
    for name in OBJECTS:
        assert back.tables[name].equals(org.tables[name]), name
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    for name, tbl in org.tables.items():
        pacsv.write_csv(tbl, csv_dir / f"{name}.csv")
    back_csv = read_org(csv_dir)
    for name in OBJECTS:
        assert back_csv.tables[name].equals(org.tables[name]), name
    (csv_dir / "Lead.csv").unlink()
    with pytest.raises(FileNotFoundError, match="Lead"):
        read_org(csv_dir)


def test_load_into_duckdb_like_dlt(org, tmp_path):
    path = tmp_path / "w.duckdb"
    load_into_duckdb(org, path)
    con = duckdb.connect(str(path), read_only=True)
    try:
        n = con.execute("select count(*) from salesforce.opportunity_history").fetchone()[0]
        assert n == org.tables["OpportunityHistory"].num_rows
        cols = [
            r[0]
            for r in con.execute(
                "select column_name from information_schema.columns where table_schema='salesforce'"
                " and table_name='lead' order by ordinal_position"
            ).fetchall()
        ]
        assert cols[:-2] == [snake(f) for f in OBJECTS["Lead"].field_names]
        assert "mql_date_c" in cols and cols[-2:] == ["_dlt_load_id", "_dlt_id"]
        won = con.execute("select count(*) from salesforce.opportunity where is_won").fetchone()[0]
        assert won == sum(org.tables["Opportunity"]["IsWon"].to_pylist())
    finally:
        con.close()
