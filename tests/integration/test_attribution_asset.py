"""The data-driven attribution asset on a temp DuckDB journey table (real Dagster run)."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance, materialize

from assets.attribution import attribution_assets
from assets.attribution.assets import CHANNEL_EFFECTS_KEY, DATA_DRIVEN_KEY
from assets.attribution.journeys import from_touches
from assets.attribution.markov import markov, markov_touch_credits
from assets.attribution.shapley import (
    conversion_rate_shapley,
    shapley,
    shapley_touch_credits,
)

CHANNELS = ["paid_search", "email", "webinar", "events", "display"]


def journey_rows(seed: int = 5, n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        length = int(rng.integers(1, 6))
        chans = [CHANNELS[int(c)] for c in rng.integers(0, len(CHANNELS), length)]
        won_p = 0.15 + 0.25 * ("webinar" in chans)
        status = rng.choice(["won", "lost", "open"], p=[won_p, 0.8 - won_p, 0.2])
        for i, ch in enumerate(chans):
            rows.append(
                {
                    "opportunity_id": f"006{k:06d}",
                    "touchpoint_id": f"tp{k}-{i}",
                    "touch_position": i + 1,
                    "touch_count": length,
                    "occurred_at": pd.Timestamp("2026-01-01") + pd.Timedelta(days=k % 50 + i),
                    "channel": ch,
                    "campaign": f"{ch}-q1",
                    "touch_type": "web_visit",
                    "opportunity_created_date": pd.Timestamp("2026-03-01").date(),
                    "opportunity_close_date": pd.Timestamp("2026-04-01").date(),
                    "opportunity_status": status,
                    "is_won": status == "won",
                    "amount_usd": float(1000 + 10 * k),
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture
def warehouse(tmp_path, monkeypatch):
    monkeypatch.setenv("SALESOPS_HOME", str(tmp_path))
    path = tmp_path / "warehouse.duckdb"
    rows = journey_rows()
    with duckdb.connect(str(path)) as con:
        con.execute("create schema intermediate")
        con.register("rows_df", rows)
        con.execute("create table intermediate.int_opportunity_journeys as select * from rows_df")
    return path, rows


def run(instance: DagsterInstance):
    return materialize(attribution_assets, instance=instance, raise_on_error=False)


def test_asset_writes_credits_equal_to_the_pure_models(warehouse):
    path, rows = warehouse
    with DagsterInstance.ephemeral() as instance:
        result = run(instance)
        assert result.success
        mats = {
            e.asset_key: e.event_specific_data.materialization
            for e in result.get_asset_materialization_events()
        }
        assert set(mats) == {DATA_DRIVEN_KEY, CHANNEL_EFFECTS_KEY}
        assert mats[DATA_DRIVEN_KEY].metadata["dagster/row_count"].value == 2 * len(rows)
    with duckdb.connect(str(path), read_only=True) as con:
        touches = con.execute(
            "select * from marts.attribution_data_driven order by opportunity_id, touch_position"
        ).df()
        effects = con.execute("select * from marts.attribution_channel_effects").df()

    # independent route: pure numpy models over the same rows
    closed = rows[rows.opportunity_status != "open"].assign(
        converted=lambda d: d.is_won.astype(int), value=lambda d: d.amount_usd * d.is_won
    )
    fit = markov(from_touches(closed, journey_col="opportunity_id", order_col="touch_position"))
    all_j = from_touches(
        rows.assign(converted=0), journey_col="opportunity_id", order_col="touch_position"
    )
    want_markov = markov_touch_credits(all_j, fit)
    want_shapley = shapley_touch_credits(all_j)
    # all_j orders journeys by first appearance == opportunity_id order here
    got_m = touches[touches.attribution_model == "markov"]["credit"].to_numpy()
    got_s = touches[touches.attribution_model == "shapley"]["credit"].to_numpy()
    np.testing.assert_allclose(got_m, want_markov, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got_s, want_shapley, rtol=0, atol=1e-12)

    sums = touches.groupby(["opportunity_id", "attribution_model"])["credit"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, atol=1e-12)
    won = touches[touches.is_won]
    np.testing.assert_allclose(
        won.groupby("attribution_model")["attributed_bookings_usd"].sum().to_numpy(),
        rows[rows.is_won].groupby("opportunity_id")["amount_usd"].first().sum(),
        rtol=1e-12,
    )

    mk = effects[effects.attribution_model == "markov"].set_index("channel")
    for k, ch in enumerate(fit.channels):
        assert abs(mk.loc[ch, "removal_effect"] - fit.removal_effects[k]) < 1e-12
        assert abs(mk.loc[ch, "credited_bookings_usd"] - fit.values[k]) < 1e-6
        assert abs(mk.loc[ch, "odds_ratio"] - fit.odds_ratio[k]) < 1e-9
        assert abs(mk.loc[ch, "win_rate_with"] - fit.conversion_rate_with[k]) < 1e-12
    sh = effects[effects.attribution_model == "shapley"].set_index("channel")
    want_sh = shapley(
        from_touches(closed, journey_col="opportunity_id", order_col="touch_position")
    )
    for k, ch in enumerate(want_sh.channels):
        assert abs(sh.loc[ch, "credited_won_deals"] - want_sh.conversions[k]) < 1e-9
    rate = conversion_rate_shapley(
        from_touches(closed, journey_col="opportunity_id", order_col="touch_position")
    ).set_index("channel")
    for ch in CHANNELS:
        assert abs(sh.loc[ch, "rate_contribution"] - rate.loc[ch, "rate_contribution"]) < 1e-12
    # the planted winner: webinar lifts the win rate, so it leads both effect measures
    assert mk["odds_ratio"].idxmax() == "webinar"
    assert sh["rate_contribution"].idxmax() == "webinar"


def test_rerun_is_idempotent(warehouse):
    path, rows = warehouse
    with DagsterInstance.ephemeral() as instance:
        assert run(instance).success
        assert run(instance).success
    with duckdb.connect(str(path), read_only=True) as con:
        n = con.execute("select count(*) from marts.attribution_data_driven").fetchone()[0]
        m = con.execute("select count(*) from marts.attribution_channel_effects").fetchone()[0]
    assert n == 2 * len(rows)
    assert m == 2 * rows.channel.nunique()


def test_missing_journey_table_fails_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("SALESOPS_HOME", str(tmp_path))
    with DagsterInstance.ephemeral() as instance:
        result = run(instance)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "int_opportunity_journeys does not exist" in failure.event_specific_data.error.message


def test_per_touch_relation_is_a_view_that_replaces_an_older_table(warehouse):
    path, rows = warehouse
    with duckdb.connect(str(path)) as con:  # what an earlier version of the asset left behind
        con.execute("create schema marts")
        con.execute("create table marts.attribution_data_driven as select 1 as stale")
    with DagsterInstance.ephemeral() as instance:
        assert run(instance).success
    with duckdb.connect(str(path)) as con:
        kinds = dict(
            con.execute(
                "select table_name, table_type from information_schema.tables "
                "where table_schema = 'marts'"
            ).fetchall()
        )
        assert kinds == {
            "attribution_data_driven": "VIEW",
            "attribution_channel_effects": "BASE TABLE",
        }
        # the view follows the journeys: a new touch shows up with credits summing to 1
        con.execute(
            "insert into intermediate.int_opportunity_journeys by name "
            "select '006999999' as opportunity_id, 'tp-new' as touchpoint_id, "
            "1 as touch_position, 1 as touch_count, 'email' as channel, "
            "'open' as opportunity_status, false as is_won, 5.0 as amount_usd"
        )
        got = con.execute(
            "select attribution_model, sum(credit) from marts.attribution_data_driven "
            "where opportunity_id = '006999999' group by 1 order by 1"
        ).fetchall()
        assert got == [("markov", 1.0), ("shapley", 1.0)]
        assert con.execute("select count(*) from marts.attribution_data_driven").fetchone()[
            0
        ] == 2 * (len(rows) + 1)


def test_the_view_over_copies_of_journeys_and_effects_equals_the_assets_view(warehouse, tmp_path):
    """`touch_view_sql` defines, in another database file, the per-touch view over copies of the
    two small inputs (journeys, channel effects): the same rows as the asset's view (EXCEPT ALL
    both ways), so an analysts' copy can hold those two tables instead of every touch's credit."""
    from assets.attribution.warehouse import touch_view_sql

    path, rows = warehouse
    with DagsterInstance.ephemeral() as instance:
        assert run(instance).success
    with duckdb.connect(str(tmp_path / "copy.duckdb")) as con:
        con.execute(f"attach '{path}' as w (read_only)")
        con.execute("create schema marts")
        con.execute(
            "create table marts.journeys as select * from w.intermediate.int_opportunity_journeys"
        )
        con.execute(
            "create table marts.effects as select * from w.marts.attribution_channel_effects"
        )
        con.execute(touch_view_sql("marts.touches", "marts.journeys", "marts.effects"))
        for a, b in [("marts.touches", "w.marts.attribution_data_driven")]:
            assert con.execute(f"select count(*) from {a}").fetchone()[0] == 2 * len(rows)
            for x, y in ((a, b), (b, a)):
                left = con.execute(f"select count(*) from (from {x} except all from {y})")
                assert left.fetchone()[0] == 0, (x, y)
