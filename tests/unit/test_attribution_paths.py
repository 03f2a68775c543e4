"""Aggregated paths (grouped in DuckDB) give the same Markov / Shapley results as per-journey
data: the asset's route (`path_stats` + `fit_paths`) against the per-journey pandas route and
against the previous SQL route (order-1 transitions and channel sets)."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from assets.attribution.journeys import from_touches, journey_paths
from assets.attribution.markov import chain_from_transitions, markov, removal_effects
from assets.attribution.shapley import channel_sets_from_frame, conversion_rate_shapley, shapley
from assets.attribution.warehouse import (
    channel_set_counts,
    fit_paths,
    path_stats,
    transitions,
)

CHANNELS = ["paid_search", "email", "webinar", "events", "display", "social"]


def journey_rows(seed: int, n: int = 400) -> pd.DataFrame:
    """Random journeys, rows shuffled; 'open_only' appears only in open opportunities."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        length = int(rng.integers(1, 7))
        chans = [CHANNELS[int(c)] for c in rng.integers(0, len(CHANNELS), length)]
        won_p = 0.1 + 0.3 * ("webinar" in chans)
        status = rng.choice(["won", "lost", "open"], p=[won_p, 0.8 - won_p, 0.2])
        if status == "open" and rng.random() < 0.3:
            chans[-1] = "open_only"
        amount = float(rng.integers(1, 10_000)) + float(rng.random()).__round__(2)
        for i, ch in enumerate(chans):
            rows.append(
                {
                    "opportunity_id": f"006{k:06d}",
                    "touchpoint_id": f"tp{k}-{i}",
                    "touch_position": i + 1,
                    "touch_count": length,
                    "channel": ch,
                    "opportunity_status": status,
                    "is_won": status == "won",
                    "amount_usd": amount,
                }
            )
    frame = pd.DataFrame(rows)
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


@pytest.fixture(params=[1, 2, 3])
def data(request):
    rows = journey_rows(request.param)
    con = duckdb.connect()
    con.register("rows_df", rows)
    con.execute("create schema intermediate")
    con.execute("create table intermediate.j as select * from rows_df")
    yield con, rows
    con.close()


def per_journey(rows: pd.DataFrame):
    """The per-journey route: one `Journeys` entry per closed opportunity (pandas)."""
    closed = rows[rows.opportunity_status != "open"].assign(
        converted=lambda d: d.is_won.astype(int), value=lambda d: d.amount_usd * d.is_won
    )
    return from_touches(closed, journey_col="opportunity_id", order_col="touch_position")


def test_path_counts_match_the_journeys(data):
    con, rows = data
    stats = path_stats(con, "intermediate.j")
    opps = rows.groupby("opportunity_id").first()
    assert stats.journeys == len(opps)
    assert stats.touches == len(rows)
    assert stats.closed_journeys == int((opps.opportunity_status != "open").sum())
    assert stats.won_journeys == int((opps.opportunity_status == "won").sum())
    ordered = rows.sort_values(["opportunity_id", "touch_position"])
    distinct = {tuple(g) for _, g in ordered.groupby("opportunity_id")["channel"]}
    assert stats.paths == len(distinct)
    # the closed paths, weighted, are exactly the closed journeys grouped by path
    want = per_journey(rows)
    want_paths = pd.DataFrame(
        {
            "path": [">".join(p) for p in journey_paths(want)],
            "won": want.conversions,
            "lost": want.nulls,
        }
    )
    want_paths["value"] = want.value
    want_by_path = want_paths.groupby("path")[["won", "lost", "value"]].sum()
    got = stats.closed
    got_by_path = pd.DataFrame(
        {"won": got.conversions, "lost": got.nulls, "value": got.value},
        index=pd.Index([">".join(p) for p in journey_paths(got)], name="path"),
    ).sort_index()
    assert got.n_journeys < want.n_journeys  # really aggregated
    assert list(got_by_path.index) == list(want_by_path.index)
    np.testing.assert_array_equal(got_by_path["won"], want_by_path["won"])
    np.testing.assert_array_equal(got_by_path["lost"], want_by_path["lost"])
    np.testing.assert_allclose(got_by_path["value"], want_by_path["value"], rtol=1e-15)
    assert "open_only" not in got.channels


def test_paths_give_the_per_journey_results(data):
    con, rows = data
    mk, sh, rate = fit_paths(path_stats(con, "intermediate.j").closed)
    journeys = per_journey(rows)
    want_mk = markov(journeys, 1)
    want_sh = shapley(journeys)
    want_rate = conversion_rate_shapley(journeys)
    assert mk.channels == want_mk.channels == tuple(sorted(set(CHANNELS)))
    assert mk.conversion_probability == pytest.approx(want_mk.conversion_probability, abs=1e-15)
    for name in ("removal_effects", "visit_probability", "visit_and_convert", "conversions"):
        np.testing.assert_allclose(
            getattr(mk, name), getattr(want_mk, name), rtol=1e-13, atol=1e-15, err_msg=name
        )
    np.testing.assert_allclose(mk.value_removal_effects, want_mk.value_removal_effects, rtol=1e-12)
    np.testing.assert_allclose(mk.values, want_mk.values, rtol=1e-12)
    assert sh.channels == want_sh.channels
    np.testing.assert_array_equal(sh.conversions, want_sh.conversions)  # sums of counts: exact
    np.testing.assert_allclose(sh.values, want_sh.values, rtol=1e-12)
    np.testing.assert_allclose(
        rate["rate_contribution"], want_rate["rate_contribution"], rtol=0, atol=1e-15
    )


def test_paths_give_the_previous_sql_route_results(data):
    con, _ = data
    mk, sh, rate = fit_paths(path_stats(con, "intermediate.j").closed)
    old_mk = removal_effects(chain_from_transitions(transitions(con, "intermediate.j"), sep=None))
    sets = channel_set_counts(con, "intermediate.j")
    old_sh = shapley(channel_sets_from_frame(sets))
    old_rate = conversion_rate_shapley(sets)
    assert mk.channels == old_mk.channels
    np.testing.assert_array_equal(mk.removal_effects, old_mk.removal_effects)
    np.testing.assert_array_equal(mk.visit_probability, old_mk.visit_probability)
    np.testing.assert_allclose(mk.value_removal_effects, old_mk.value_removal_effects, rtol=1e-12)
    np.testing.assert_array_equal(sh.conversions, old_sh.conversions)
    np.testing.assert_allclose(sh.values, old_sh.values, rtol=1e-12)
    np.testing.assert_array_equal(rate["rate_contribution"], old_rate["rate_contribution"])


def test_no_closed_journey_gives_empty_fits():
    con = duckdb.connect()
    rows = journey_rows(4, 30).assign(opportunity_status="open", is_won=False)
    con.register("rows_df", rows)
    con.execute("create table j as select * from rows_df")
    stats = path_stats(con, "j")
    assert stats.closed.n_journeys == 0 and stats.journeys == rows.opportunity_id.nunique()
    mk, sh, rate = fit_paths(stats.closed)
    assert mk.channels == () and sh.channels == () and rate.empty


def test_null_channel_is_a_clear_error():
    con = duckdb.connect()
    rows = journey_rows(5, 10)
    rows.loc[3, "channel"] = None
    con.register("rows_df", rows)
    con.execute("create table j as select * from rows_df")
    with pytest.raises(LookupError, match="without a channel"):
        path_stats(con, "j")


def test_per_touch_view_reads_identically_every_time():
    """The analysts' copy fingerprints the view to skip unchanged tables: two reads must give
    the same bits (a parallel float sum would not)."""
    from assets.attribution.warehouse import build_data_driven
    from reports.publish import table_fingerprint

    con = duckdb.connect(config={"threads": "4"})
    con.execute("create schema intermediate")
    con.execute(
        """
        create table intermediate.int_opportunity_journeys as
        with t as (
            select range as i, range // 4 as opp, hash(range) % 9 as c, hash(range // 4) as h
            from range(600000)
        )
        select 'o' || opp as opportunity_id, 't' || i as touchpoint_id,
               (i % 4 + 1)::integer as touch_position, 4 as touch_count, 'ch' || c as channel,
               case h % 3 when 0 then 'won' when 1 then 'lost' else 'open' end
                   as opportunity_status,
               h % 3 = 0 as is_won, (h % 1000)::double + 0.1 as amount_usd
        from t
        """
    )
    build_data_driven(con)
    prints = {table_fingerprint(con, "marts.attribution_data_driven")[0] for _ in range(3)}
    assert len(prints) == 1
