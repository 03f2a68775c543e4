"""Planted truth vs independent pandas measurements on the small demo org."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from sandbox.org import generate
from sandbox.schema import LEAD_SOURCES, OBJECTS, OPEN_STAGES

END = date(2026, 3, 31)
ORDER = [*OPEN_STAGES, "Closed Won"]


@pytest.fixture(scope="module")
def org():
    return generate("small", seed=11, end=END)


@pytest.fixture(scope="module")
def df(org):
    return {k: t.to_pandas() for k, t in org.tables.items()}


@pytest.fixture(scope="module")
def opps(df):
    """Opportunities with the account's segment and the set of stages each ever reached."""
    acc = df["Account"][["Id", "Segment__c"]].rename(columns={"Id": "AccountId"})
    o = df["Opportunity"].merge(acc, on="AccountId", how="inner")
    reached = df["OpportunityHistory"].groupby("OpportunityId")["StageName"].agg(set)
    return o.assign(reached=o["Id"].map(reached))


def within(measured: float, p: float, n: int, k: float = 4.0) -> bool:
    return abs(measured - p) <= k * np.sqrt(p * (1 - p) / max(n, 1)) + 1e-9


def test_stage_conversion_by_segment_matches_truth(org, opps):
    checked = 0
    for seg, g in opps.groupby("Segment__c"):
        truth = list(org.truth["stage_conversion"][seg].values())
        for i in range(5):
            r_i = g["reached"].apply(lambda s, i=i: ORDER[i] in s)
            nxt = g["reached"].apply(lambda s, i=i: ORDER[i + 1] in s)
            resolved = r_i & (g["IsClosed"] | nxt)  # still sitting in stage i: unknown yet
            n = int(resolved.sum())
            rate = nxt[resolved].sum() / n
            assert within(rate, truth[i], n), (seg, ORDER[i], rate, truth[i], n)
            checked += 1
    assert checked == 15


def test_segments_differ_as_planted(org, opps):
    closed = opps[opps["IsClosed"]]
    win = closed.groupby("Segment__c")["IsWon"].mean()
    assert win["SMB"] > win["Mid-Market"] > win["Enterprise"]
    truth = org.truth["funnel"]
    assert truth["SMB"]["win_probability"] > truth["Enterprise"]["win_probability"]


def test_won_cycle_medians_by_segment(org, opps):
    won = opps[opps["IsWon"]]
    created = won["CreatedDate"].dt.tz_convert(None).dt.normalize()
    cycle = (pd.to_datetime(won["CloseDate"]) - created).dt.days
    med = cycle.groupby(won["Segment__c"]).median()
    for seg, m in med.items():
        truth = org.truth["cycle_days"][seg]["p50"]
        # the quarter-end pull-in shortens some cycles by up to ~4 weeks
        assert 0.8 * truth <= m <= 1.12 * truth, (seg, m, truth)
    assert med["SMB"] < med["Mid-Market"] < med["Enterprise"]


def test_overall_won_share(org, opps):
    mature = opps[opps["CreatedDate"] < pd.Timestamp(END, tz="UTC") - pd.Timedelta(days=300)]
    assert mature["IsClosed"].mean() > 0.99
    mix = org.truth["segment_mix"]
    p = sum(mix[s] * org.truth["funnel"][s]["win_probability"] for s in mix)
    assert within(mature["IsWon"].mean(), p, len(mature))


def test_history_consistent_with_final_state(org, df):
    o = df["Opportunity"].set_index("Id")
    h = df["OpportunityHistory"].sort_values(["OpportunityId", "CreatedDate", "Id"])
    assert set(h["OpportunityId"]) == set(o.index)
    last = h.groupby("OpportunityId").tail(1).set_index("OpportunityId").reindex(o.index)
    first = h.groupby("OpportunityId").head(1).set_index("OpportunityId").reindex(o.index)
    assert (last["StageName"] == o["StageName"]).all()
    assert (last["CloseDate"] == o["CloseDate"]).all()
    assert (last["ForecastCategory"] == o["ForecastCategoryName"]).all()
    assert (last["Probability"] == o["Probability"]).all()
    assert (last["CreatedDate"] == o["LastModifiedDate"]).all()
    assert (first["CreatedDate"] == o["CreatedDate"]).all()
    assert (first["StageName"] == "Prospecting").all()
    neg = {i for d in org.truth["defects"] if d["kind"] == "negative_amount" for i in d["ids"]}
    diff = last["Amount"] != o["Amount"]
    assert set(o.index[diff]) == neg
    # stages only move forward, and a closed stage is always last
    rank = {s: i for i, s in enumerate(ORDER + ["Closed Lost"])}
    h = h.assign(rank=h["StageName"].map(rank).where(h["StageName"] != "Closed Lost", 99))
    assert (h.groupby("OpportunityId")["rank"].diff().fillna(0) >= 0).all()
    # IsWon => IsClosed; open deals stay open with a close date after the snapshot
    assert not (o["IsWon"] & ~o["IsClosed"]).any()
    open_ = o[~o["IsClosed"]]
    assert len(open_) > 20
    assert (pd.to_datetime(open_["CloseDate"]) >= pd.Timestamp(END)).all()


def test_slippage_and_amount_changes_recorded(df):
    h = df["OpportunityHistory"].sort_values(["OpportunityId", "CreatedDate", "Id"])
    h = h.assign(CloseDate=pd.to_datetime(h["CloseDate"]))
    g = h.groupby("OpportunityId")
    pushed = (g["CloseDate"].diff().dt.days > 0) & (h["StageName"] == g["StageName"].shift())
    pushes = pushed.groupby(h["OpportunityId"]).sum()
    assert 0.3 < (pushes > 0).mean() < 0.9
    amt_changes = (g["Amount"].diff().fillna(0) != 0).groupby(h["OpportunityId"]).sum()
    assert (amt_changes > 0).mean() > 0.3


def test_lost_deals_carry_loss_reason_and_competitor(df):
    o = df["Opportunity"]
    lost = o[o["IsClosed"] & ~o["IsWon"]]
    assert lost["Loss_Reason__c"].notna().all()
    assert lost["Competitor__c"].notna().all()
    assert o.loc[~(o["IsClosed"] & ~o["IsWon"]), "Loss_Reason__c"].isna().all()
    comp = lost[lost["Loss_Reason__c"] == "Competitor"]
    assert (comp["Competitor__c"] != "None").all()


def test_lead_funnel_rates(org, df):
    dup = {i for d in org.truth["defects"] if d["object"] == "Lead" for i in d["ids"]}
    lead = df["Lead"][~df["Lead"]["Id"].isin(dup)]
    lead = lead[lead["CreatedDate"] < pd.Timestamp(END, tz="UTC") - pd.Timedelta(days=150)]
    lf = org.truth["lead_funnel"]
    mql = lead["MQL_Date__c"].notna()
    sql = lead["SQL_Date__c"].notna()
    assert within(mql.mean(), lf["p_mql"], len(lead))
    assert within(sql[mql].mean(), lf["p_sql_given_mql"], int(mql.sum()))
    assert within(lead.loc[sql, "IsConverted"].mean(), lf["p_convert_given_sql"], int(sql.sum()))
    conv = lead[lead["IsConverted"]]
    assert (pd.to_datetime(conv["MQL_Date__c"]) <= pd.to_datetime(conv["SQL_Date__c"])).all()
    assert (pd.to_datetime(conv["SQL_Date__c"]) <= pd.to_datetime(conv["ConvertedDate"])).all()
    # a converted lead's opportunity is created on conversion, at its account, from its source
    o = df["Opportunity"].set_index("Id")
    co = o.loc[conv["ConvertedOpportunityId"]]
    assert (co["CreatedDate"].dt.date.to_numpy() == conv["ConvertedDate"].to_numpy()).all()
    broken = {i for d in org.truth["defects"] if d["object"] == "Opportunity" for i in d["ids"]}
    ok = ~co.index.isin(broken)
    assert (co["AccountId"].to_numpy()[ok] == conv["ConvertedAccountId"].to_numpy()[ok]).all()
    c = df["Contact"].set_index("Id")
    mail = c.loc[conv["ConvertedContactId"], "Email"]
    ok = mail.notna().to_numpy()  # planted missing emails aside, the contact keeps the email
    assert ok.mean() > 0.95
    assert (mail.to_numpy()[ok] == conv["Email"].to_numpy()[ok]).all()


def test_bookings_follow_the_noiseless_curve(org, df):
    o = df["Opportunity"]
    won = o[o["IsWon"] & (o["Amount"] > 0)].copy()
    rates = df["DatedConversionRate"]
    won["month"] = pd.to_datetime(won["CloseDate"]).dt.to_period("M")
    r = rates.assign(month=pd.to_datetime(rates["StartDate"]).dt.to_period("M"))
    won = won.merge(
        r[["IsoCode", "month", "ConversionRate"]],
        left_on=["CurrencyIsoCode", "month"],
        right_on=["IsoCode", "month"],
    )
    won["usd"] = won["Amount"] / won["ConversionRate"]
    actual = won.groupby(won["month"].astype(str))["usd"].sum()
    curve = pd.Series(org.truth["bookings"]["monthly_usd_noiseless"])
    assert len(curve) >= 36
    both = pd.DataFrame({"actual": actual, "expected": curve}).dropna()
    ratio = both["actual"].sum() / both["expected"].sum()
    assert 0.8 < ratio < 1.2, ratio
    # growth: the last year books more than the first one, in data and in truth
    assert both["actual"].iloc[-12:].sum() > both["actual"].iloc[:12].sum()
    assert curve.iloc[-12:].sum() > 1.15 * curve.iloc[:12].sum()
    # quarter-end spike: the third month of each quarter carries well over a third
    qe = np.array([int(m[5:7]) % 3 == 0 for m in both.index])
    share = both.loc[qe, "actual"].sum() / both["actual"].sum()
    share_truth = both.loc[qe, "expected"].sum() / both["expected"].sum()
    assert share_truth > 0.4
    assert abs(share - share_truth) < 0.08 and share > 0.36


def test_rep_ramp_visible_in_deal_creation(df):
    u = df["User"].set_index("Id")
    o = df["Opportunity"]
    start = o["CreatedDate"].min()
    reps = u[u["Hire_Date__c"].notna() & u["Segment__c"].notna()]
    hire = pd.to_datetime(reps["Hire_Date__c"]).dt.tz_localize("UTC")
    new_hires = hire[hire > start + pd.Timedelta(days=30)]
    assert len(new_hires) >= 5
    own = o[o["OwnerId"].isin(new_hires.index)]
    tenure = (own["CreatedDate"] - own["OwnerId"].map(new_hires)).dt.days
    early = (tenure < 45).sum() / len(new_hires)  # per rep, first 45 days
    later = ((tenure >= 150) & (tenure < 195)).sum() / len(new_hires)
    assert early < 0.6 * later, (early, later)


def test_quota_per_rep_per_quarter(df):
    q = df["ForecastingQuota"]
    u = df["User"].set_index("Id")
    assert q["QuotaOwnerId"].isin(u.index).all()
    assert not q.duplicated(["QuotaOwnerId", "StartDate"]).any()
    starts = pd.to_datetime(q["StartDate"])
    assert starts.dt.month.isin([1, 4, 7, 10]).all() and (starts.dt.day == 1).all()
    assert (q["QuotaAmount"] > 0).all()
    active_reps = u[u["IsActive"] & u["Segment__c"].notna()].index
    current = q[starts == starts[starts < pd.Timestamp(END)].max()]
    assert set(active_reps) <= set(current["QuotaOwnerId"])


def test_activities_some_reps_never_log(org, df):
    acts = pd.concat([df["Task"][["OwnerId"]], df["Event"][["OwnerId"]]])
    silent = set(org.truth["reps"]["non_logging_rep_ids"])
    assert silent
    assert not acts["OwnerId"].isin(silent).any()
    assert df["Task"]["WhatId"].notna().mean() > 0.6
    calls = df["Task"][df["Task"]["TaskSubtype"] == "Call"]
    assert calls["CallDurationInSeconds"].notna().all() and len(calls) > 100


def test_injected_defects_found_by_independent_checks(org, df):
    found: dict[tuple[str, str, str], set[str]] = {}

    def put(obj, field, kind, mask):
        found[(obj, field, kind)] = set(df[obj].loc[mask, "Id"])

    o, a, c, ld = df["Opportunity"], df["Account"], df["Contact"], df["Lead"]
    put("Opportunity", "AccountId", "missing_required", o["AccountId"].isna())
    put("Account", "Industry", "missing_required", a["Industry"].isna())
    put("Contact", "Email", "missing_required", c["Email"].isna())
    put("Lead", "LeadSource", "missing_required", ld["LeadSource"].isna())
    pick = {
        name: set(OBJECTS[name].get(field).picklist)
        for name, field in [
            ("Opportunity", "Type"),
            ("Lead", "LeadSource"),
            ("Account", "Industry"),
        ]
    }
    put(
        "Opportunity",
        "Type",
        "invalid_picklist",
        o["Type"].notna() & ~o["Type"].isin(pick["Opportunity"]),
    )
    put(
        "Lead",
        "LeadSource",
        "invalid_picklist",
        ld["LeadSource"].notna() & ~ld["LeadSource"].isin(LEAD_SOURCES),
    )
    put(
        "Account",
        "Industry",
        "invalid_picklist",
        a["Industry"].notna() & ~a["Industry"].isin(pick["Account"]),
    )
    put("Opportunity", "Amount", "negative_amount", o["Amount"] < 0)
    put(
        "Opportunity",
        "AccountId",
        "orphan_key",
        o["AccountId"].notna() & ~o["AccountId"].isin(a["Id"]),
    )
    put("Opportunity", "OwnerId", "orphan_key", ~o["OwnerId"].isin(df["User"]["Id"]))
    put(
        "Contact", "AccountId", "orphan_key", c["AccountId"].notna() & ~c["AccountId"].isin(a["Id"])
    )
    for obj in ("Contact", "Lead"):
        t = df[obj].sort_values(["CreatedDate", "Id"])
        email = t["Email"].str.strip().str.lower()
        put(obj, "Email", "duplicate", email.notna() & email.duplicated(keep="first"))
    planted = {(d["object"], d["field"], d["kind"]): set(d["ids"]) for d in org.truth["defects"]}
    assert planted.keys() == found.keys()
    for key, ids in planted.items():
        assert found[key] == ids, key
        assert len(ids) > 0, key
    # about 1 % of the rows of each checked object
    for obj in ("Opportunity", "Account", "Contact", "Lead"):
        n = sum(len(v) for k, v in planted.items() if k[0] == obj)
        assert 0.005 < n / len(df[obj]) < 0.015, obj


def test_defect_rate_is_configurable():
    counts = dict(
        opportunities=600, leads=1400, accounts=300, contacts=800, activities=2000, reps=20
    )
    hi = generate(counts, seed=5, end=END, defect_rate=0.05)
    none = generate(counts, seed=5, end=END, defect_rate=0.0)
    n_opp = hi.tables["Opportunity"].num_rows
    bad = sum(len(d["ids"]) for d in hi.truth["defects"] if d["object"] == "Opportunity")
    assert bad / n_opp > 0.04
    assert sum(len(d["ids"]) for d in none.truth["defects"]) == 0
