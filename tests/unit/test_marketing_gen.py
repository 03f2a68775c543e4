"""Marketing data generated from the demo org: contract columns, consistency, planted effects."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from sandbox.marketing import CHANNELS, TOUCH_TYPES, generate_marketing, write_landing
from sandbox.org import generate

END = date(2026, 6, 30)


@pytest.fixture(scope="module")
def org():
    return generate("small", seed=5, end=END)


@pytest.fixture(scope="module")
def mkt(org):
    return generate_marketing(org, seed=1)


@pytest.fixture(scope="module")
def journeys(org, mkt):
    """One row per known lead email: channels present in its journey and its outcome."""
    tp = mkt["touchpoints"].to_pandas()
    tp["key"] = tp["email"].str.strip().str.lower()
    lead = org.tables["Lead"].to_pandas()
    lead = lead[lead["Email"].notna()].assign(key=lambda x: x["Email"].str.lower())
    lead = lead.sort_values("CreatedDate").drop_duplicates("key")
    won = set(org.tables["Opportunity"].to_pandas().query("IsWon")["Id"])
    present = (
        tp[tp["key"].isin(lead["key"])].groupby(["key", "channel"]).size().unstack(fill_value=0) > 0
    )
    lead = lead.set_index("key").loc[present.index]
    return present, lead["IsConverted"], lead["ConvertedOpportunityId"].isin(won)


def test_contract_columns_and_values(mkt):
    tp, sp = mkt["touchpoints"], mkt["ad_spend"]
    assert tp.column_names[:6] == [
        "touchpoint_id",
        "occurred_at",
        "channel",
        "campaign",
        "touch_type",
        "email",
    ]
    assert sp.column_names[:5] == ["date", "channel", "campaign", "spend", "currency"]
    t = tp.to_pandas()
    assert t["touchpoint_id"].is_unique
    assert set(t["channel"]) == set(CHANNELS)
    assert set(t["touch_type"]) <= set(TOUCH_TYPES) and "form_fill" in set(t["touch_type"])
    parsed = pd.to_datetime(t["occurred_at"], format="ISO8601", utc=True)
    assert parsed.notna().all()
    offsets = t["occurred_at"].str[-6:]
    non_utc = ~offsets.isin(["+00:00"]) & ~t["occurred_at"].str.endswith("Z")
    assert 0.1 < non_utc.mean() < 0.7


def test_offsets_keep_the_instant(mkt):
    t = mkt["touchpoints"].to_pandas()
    s = t["occurred_at"]
    local = pd.to_datetime(s.str[:23])
    utc = pd.to_datetime(s, format="ISO8601", utc=True).dt.tz_convert(None)
    shift = (local - utc).dt.total_seconds() / 60
    sign = np.where(s.str.endswith("Z"), 0, np.where(s.str[-6] == "-", -1, 1))
    hours = pd.to_numeric(s.str[-5:-3], errors="coerce").fillna(0)
    mins = pd.to_numeric(s.str[-2:], errors="coerce").fillna(0)
    assert (shift == sign * (hours * 60 + mins)).all()


def test_touches_precede_lead_creation_and_use_org_emails(org, mkt):
    tp = mkt["touchpoints"].to_pandas()
    tp["key"] = tp["email"].str.strip().str.lower()
    tp["ts"] = pd.to_datetime(tp["occurred_at"], format="ISO8601", utc=True)
    lead = org.tables["Lead"].to_pandas().dropna(subset=["Email"])
    first_lead = lead.groupby(lead["Email"].str.lower())["CreatedDate"].min()
    known = tp["key"].isin(first_lead.index)
    assert known.mean() > 0.85
    assert (tp.loc[known, "ts"] < tp.loc[known, "key"].map(first_lead)).all()
    # every lead's journey ends with the form fill that created it
    fills = tp[known & (tp["touch_type"] == "form_fill")]
    assert fills["key"].nunique() == fills.shape[0]
    contacts = set(org.tables["Contact"].to_pandas()["Email"].dropna().str.lower())
    unknown = tp.loc[~known, "key"]
    assert len(unknown) > 100 and not unknown.isin(contacts).any()
    assert (tp["email"] != tp["key"]).mean() > 0.01  # some messy spellings to normalise
    assert (tp["ts"] < pd.Timestamp(org.as_of)).all()


def test_campaigns_match_the_org(org, mkt):
    camp = set(org.tables["Campaign"].to_pandas()["Name"])
    tp = mkt["touchpoints"].to_pandas()
    paid = tp[tp["channel"].isin(["paid_search", "paid_social", "webinar", "events"])]
    assert paid["campaign"].isin(camp).all()
    sp = mkt["ad_spend"].to_pandas()
    assert sp.loc[sp["spend"] > 0, "campaign"].isin(camp).all()


def test_channel_effect_ranking_reproducible_from_data(org, journeys):
    present, converted, won = journeys
    truth = org.truth["channel_effects"]
    est = {}
    for ch in CHANNELS:
        has = present[ch]
        p1, p0 = converted[has].mean(), converted[~has].mean()
        est[ch] = (p1 / (1 - p1)) / (p0 / (1 - p0))
    ranked = sorted(est, key=lambda c: -est[c])
    assert ranked[:3] == org.truth["channel_ranking"][:3]
    r_est = pd.Series(est).rank()
    r_true = pd.Series({c: truth[c]["lead_to_opportunity_odds_ratio"] for c in CHANNELS}).rank()
    assert r_est.corr(r_true) > 0.9
    for ch in ("referral", "events", "display"):
        t = truth[ch]["lead_to_opportunity_odds_ratio"]
        assert abs(np.log(est[ch]) - np.log(t)) < 0.35, (ch, est[ch], t)


def test_win_effects_visible_among_converted_leads(org, journeys):
    present, converted, won = journeys
    conv = converted.to_numpy()
    est = {}
    for ch in CHANNELS:
        has = present[ch].to_numpy()[conv]
        w = won.to_numpy()[conv]
        p1, p0 = w[has].mean(), w[~has].mean()
        est[ch] = (p1 / (1 - p1)) / (p0 / (1 - p0))
    truth = org.truth["channel_effects"]
    r_true = pd.Series({c: truth[c]["opportunity_to_won_odds_ratio"] for c in CHANNELS}).rank()
    assert pd.Series(est).rank().corr(r_true) > 0.7


def test_ad_spend_daily_paid_only(org, mkt):
    sp = mkt["ad_spend"].to_pandas()
    free = sp["channel"].isin(["organic_search", "direct"])
    assert (sp.loc[free, "spend"] == 0).all() and free.any()
    by_ch = sp.groupby("channel")["spend"].sum()
    assert (by_ch[["paid_search", "paid_social", "display", "events"]] > 0).all()
    assert not sp.duplicated(["date", "channel", "campaign"]).any()
    assert (pd.to_datetime(sp["date"]) < pd.Timestamp(END)).all()
    assert set(sp["currency"]) == {"USD"}
    # spend is daily: every day of the last quarter has paid spend
    last_q = sp[(pd.to_datetime(sp["date"]) >= "2026-04-01") & ~free]
    assert last_q["date"].nunique() == 90


def test_same_seed_same_data(org, mkt):
    again = generate_marketing(org, seed=1)
    other = generate_marketing(org, seed=2)
    assert again["touchpoints"].equals(mkt["touchpoints"])
    assert again["ad_spend"].equals(mkt["ad_spend"])
    assert not other["touchpoints"].equals(mkt["touchpoints"])


def test_write_landing_files(mkt, tmp_path):
    paths = write_landing(mkt, tmp_path)
    assert {p.parent.name for p in paths} == {"ad_spend", "touchpoints"}
    spend = [p for p in paths if p.parent.name == "ad_spend"]
    assert len(spend) == 1 and spend[0].suffix == ".csv"
    assert pacsv.read_csv(spend[0]).num_rows == mkt["ad_spend"].num_rows
    tps = [p for p in paths if p.parent.name == "touchpoints"]
    assert {p.suffix for p in tps} == {".parquet", ".csv"}
    n = sum(
        pq.read_table(p).num_rows if p.suffix == ".parquet" else pacsv.read_csv(p).num_rows
        for p in tps
    )
    assert n == mkt["touchpoints"].num_rows
    assert write_landing(mkt, tmp_path) == paths  # idempotent: same names, same files
