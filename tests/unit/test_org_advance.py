"""advance(): a plausible, incremental change set on top of a generated org."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from sandbox.org import advance, generate, read_org, write_org
from sandbox.schema import OBJECTS

END = date(2026, 6, 30)
COUNTS = dict(
    opportunities=1500, leads=3500, accounts=600, contacts=1800, activities=12_000, reps=30
)


@pytest.fixture(scope="module")
def before():
    return generate(COUNTS, seed=21, end=END)


@pytest.fixture(scope="module")
def after(before):
    return advance(before, 7)


def frames(org):
    return {k: t.to_pandas() for k, t in org.tables.items()}


def test_as_of_moves_and_truth_records_the_advance(before, after):
    assert after.as_of == before.as_of + timedelta(days=7)
    assert after.truth["as_of"].startswith("2026-07-07")
    step = after.truth["advances"][-1]
    assert step["days"] == 7 and step["changes"]["Opportunity"]["changed"] > 0
    assert before.truth.get("advances") is None  # the input org is not mutated


def test_only_new_or_changed_rows_have_newer_modstamps(before, after):
    old_as_of = pd.Timestamp(before.as_of)
    new_as_of = pd.Timestamp(after.as_of)
    a, b = frames(before), frames(after)
    touched_total = 0
    for name in OBJECTS:
        old = a[name].set_index("Id")
        new = b[name].set_index("Id")
        assert set(old.index) <= set(new.index), name  # nothing disappears (soft deletes)
        assert new.columns.tolist() == old.columns.tolist()
        common = new.loc[old.index]
        changed = ~((common == old) | (common.isna() & old.isna())).all(axis=1)
        added = new.index.difference(old.index)
        stamps = pd.concat(
            [common.loc[changed, "SystemModstamp"], new.loc[added, "SystemModstamp"]]
        )
        assert (stamps > old_as_of).all() and (stamps < new_as_of).all(), name
        assert (common.loc[~changed, "SystemModstamp"] <= old_as_of).all(), name
        touched_total += len(stamps)
    rows = sum(len(df) for df in a.values())
    # a plausible weekly change set: ~0.1-1 % of all rows
    assert 0.001 * rows < touched_total < 0.01 * rows, (touched_total, rows)


def test_history_still_matches_opportunities(after):
    df = frames(after)
    o = df["Opportunity"].set_index("Id")
    o = o[~o["IsDeleted"]]
    h = df["OpportunityHistory"]
    h = h[~h["IsDeleted"]].sort_values(["OpportunityId", "CreatedDate", "Id"])
    last = h.groupby("OpportunityId").tail(1).set_index("OpportunityId").reindex(o.index)
    assert (last["StageName"] == o["StageName"]).all()
    assert (last["CloseDate"] == o["CloseDate"]).all()
    assert (last["ForecastCategory"] == o["ForecastCategoryName"]).all()
    neg = {i for d in after.truth["defects"] if d["kind"] == "negative_amount" for i in d["ids"]}
    assert set(o.index[last["Amount"] != o["Amount"]]) == neg
    assert (last["CreatedDate"] <= o["SystemModstamp"]).all()


def test_deals_progress_and_new_ones_arrive(before, after):
    a, b = frames(before), frames(after)
    old = a["Opportunity"].set_index("Id")
    new = b["Opportunity"].set_index("Id")
    was_open = old.index[~old["IsClosed"]]
    closed_now = new.loc[was_open, "IsClosed"] & ~new.loc[was_open, "IsDeleted"]
    moved = new.loc[was_open, "StageName"] != old.loc[was_open, "StageName"]
    assert closed_now.sum() > 0 and moved.sum() > closed_now.sum()
    added = new.index.difference(old.index)
    assert len(added) > 3
    assert (new.loc[added, "CreatedDate"] > pd.Timestamp(before.as_of)).all()
    h_new = b["OpportunityHistory"].set_index("Id").drop(a["OpportunityHistory"]["Id"])
    assert set(h_new["OpportunityId"]) >= set(added)
    lead_added = b["Lead"].set_index("Id").index.difference(a["Lead"]["Id"])
    assert len(lead_added) > 5


def test_deletes_are_soft_and_cascade(after):
    df = frames(after)
    deleted = {k: int(v["IsDeleted"].sum()) for k, v in df.items() if "IsDeleted" in v}
    assert deleted["Task"] > 0 and deleted["Lead"] > 0
    gone = set(df["Opportunity"].loc[df["Opportunity"]["IsDeleted"], "Id"])
    for child in ("OpportunityHistory", "OpportunityLineItem", "OpportunityContactRole"):
        c = df[child]
        assert c.loc[c["OpportunityId"].isin(gone), "IsDeleted"].all(), child


def test_defect_records_untouched(before, after):
    ids = {(d["object"], i) for d in before.truth["defects"] for i in d["ids"]}
    a, b = frames(before), frames(after)
    for obj in {o for o, _ in ids}:
        sel = [i for o, i in ids if o == obj]
        old = a[obj].set_index("Id").loc[sel]
        new = b[obj].set_index("Id").loc[sel]
        same = (old == new) | (old.isna() & new.isna())
        assert same.all().all(), obj
    assert after.truth["defects"] == before.truth["defects"]


def test_advance_is_deterministic_and_works_after_read(before, after, tmp_path):
    again = advance(before, 7)
    for name in OBJECTS:
        assert again.tables[name].equals(after.tables[name]), name
    write_org(before, tmp_path)
    reread = advance(read_org(tmp_path), 7)
    for name in OBJECTS:
        assert reread.tables[name].equals(after.tables[name]), name
    with pytest.raises(ValueError, match="positive"):
        advance(before, 0)


def test_successive_advances_keep_stamps_increasing(after):
    later = advance(after, 3)
    lo = pd.Timestamp(after.as_of)
    hi = pd.Timestamp(later.as_of)
    h = later.tables["OpportunityHistory"].to_pandas()
    newer = h[h["SystemModstamp"] > lo]
    assert len(newer) > 0 and (newer["SystemModstamp"] < hi).all()
