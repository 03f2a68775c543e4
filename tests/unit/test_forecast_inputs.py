"""The DuckDB aggregates the engine reads equal the pandas route on the whole history."""

import duckdb
import numpy as np
import pandas as pd
import pytest

from forecasts.inputs import frame_inputs, origin_inputs, slippage_weights
from forecasts.pipeline import slippage_histogram, win_rates, win_rates_from_counts
from forecasts.series import bookings_as_of, prepare_history, state_as_of
from forecasts.synthetic import synthetic_history

ORIGINS = [
    pd.Timestamp("2024-06-10 13:30"),  # not midnight: close dates compare with the day
    pd.Timestamp("2025-03-03"),
    pd.Timestamp("2025-07-01"),
]


@pytest.fixture(scope="module")
def raw():
    h, _ = synthetic_history(start="2023-01-02", end="2025-09-01", seed=3, deals_per_day=4)
    return h


@pytest.fixture(scope="module")
def prepared(raw):
    return prepare_history(raw)


@pytest.fixture(scope="module")
def inputs(raw):
    return frame_inputs(raw, ORIGINS)


def _by_day(frame: pd.DataFrame, date_col: str, keys: list[str]) -> pd.Series:
    f = frame.assign(**{k: frame[k].astype(str) for k in keys if k in frame})
    s = f.groupby([date_col, *keys], observed=True)["amount_usd"].sum()
    return s[s != 0].sort_index()


@pytest.mark.parametrize("origin", ORIGINS)
def test_aggregates_equal_the_pandas_route(prepared, inputs, origin):
    got = inputs[origin]
    keys = ["segment", "region"]
    # bookings known at the origin, per close day and series
    want = _by_day(bookings_as_of(prepared, origin), "booking_date", keys)
    have = got.bookings.set_index(["booking_date", *keys])["amount_usd"].sort_index()
    assert len(want) > 100
    pd.testing.assert_series_equal(
        have, want, check_names=False, check_index_type=False, rtol=1e-12
    )
    # open pipeline per close day, series and stage (amounts clipped at 0)
    st = state_as_of(prepared, origin)
    op = st[~st["is_closed"]].assign(amount_usd=lambda x: x["amount_usd"].clip(lower=0))
    want = _by_day(op, "close_date", [*keys, "stage_name"])
    have = got.open.set_index(["close_date", *keys, "stage_name"])["amount_usd"].sort_index()
    pd.testing.assert_series_equal(
        have[have != 0], want, check_names=False, check_index_type=False, rtol=1e-12
    )
    # won with a close date on/after the origin's day
    wf = st[st["is_won"] & (st["close_date"] >= origin.normalize())]
    want = _by_day(wf, "close_date", keys)
    have = got.won_future.set_index(["close_date", *keys])["amount_usd"].sort_index()
    pd.testing.assert_series_equal(
        have[have != 0], want, check_names=False, check_index_type=False, rtol=1e-12
    )
    # stage win rates and slippage exactly as the per-deal pandas computation
    pd.testing.assert_series_equal(
        win_rates_from_counts(got.win_counts), win_rates(prepared, origin), rtol=1e-15
    )
    np.testing.assert_allclose(
        slippage_weights(got.slippage), slippage_histogram(prepared, origin), atol=1e-15
    )


def test_an_origin_gives_the_same_bits_whatever_the_other_origins(raw, inputs):
    """The fit cache hashes the series at an origin: it must not depend on the query's other
    origins (exact integer sums, no float reordering)."""
    alone = frame_inputs(raw, [ORIGINS[1]])[ORIGINS[1]]
    with_more = frame_inputs(raw, [*ORIGINS, pd.Timestamp("2025-05-05")])[ORIGINS[1]]
    for name in ("bookings", "open", "won_future", "win_counts", "slippage"):
        a, b, c = (getattr(x, name) for x in (alone, with_more, inputs[ORIGINS[1]]))
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        pd.testing.assert_frame_equal(a, c, check_exact=True)


def test_warehouse_table_with_time_zone_and_nulls(raw):
    """TIMESTAMPTZ validity (another session time zone) and NULL segment / amount behave like
    `prepare_history` (Unknown, 0)."""
    h = raw.copy()
    h.loc[h.index[::7], "segment"] = None
    h.loc[h.index[::11], "amount_usd"] = np.nan
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'America/Los_Angeles'")
        con.execute("CREATE SCHEMA marts")
        con.register("raw", h)
        con.execute(
            "CREATE TABLE marts.opportunity_history AS SELECT * REPLACE ("
            "timezone('UTC', valid_from::TIMESTAMP) AS valid_from, "
            "timezone('UTC', valid_to::TIMESTAMP) AS valid_to, close_date::DATE AS close_date) "
            "FROM raw"
        )
        assert (
            "TIME ZONE"
            in con.execute(
                "SELECT typeof(valid_from) FROM marts.opportunity_history LIMIT 1"
            ).fetchone()[0]
        )
        got = origin_inputs(con, ORIGINS[2:])[ORIGINS[2]]
    finally:
        con.close()
    prepared = prepare_history(h)
    want = _by_day(bookings_as_of(prepared, ORIGINS[2]), "booking_date", ["segment", "region"])
    have = got.bookings.set_index(["booking_date", "segment", "region"])["amount_usd"]
    pd.testing.assert_series_equal(
        have[have != 0].sort_index(), want, check_names=False, check_index_type=False, rtol=1e-12
    )
    assert "Unknown" in set(got.bookings["segment"])


def test_missing_column_is_named(raw):
    with pytest.raises(ValueError, match="missing column.*is_won"):
        frame_inputs(raw.drop(columns=["is_won"]), ORIGINS[:1])


SORT_KEYS = {
    "bookings": ["booking_date", "segment", "region"],
    "open": ["close_date", "segment", "region", "stage_name"],
    "won_future": ["close_date", "segment", "region"],
    "win_counts": ["stage_name"],
    "slippage": ["slip", "n_states"],
}


def test_frames_are_in_pandas_key_order_with_a_range_index(raw):
    """Origins are split by slicing a frame DuckDB sorted: each origin's frames must be in the
    order pandas' own sort gives (the engine's float sums follow row order), also for
    non-ASCII / mixed-case names and NULL close dates, and an origin before any data is empty."""
    h = raw.copy()
    rng = np.random.default_rng(5)
    names = np.array(["Émea", "apac", "Zulu", "amer", "Ásia"])
    h["segment"] = names[rng.integers(0, len(names), len(h))]
    h["stage_name"] = h["stage_name"].where(rng.random(len(h)) > 0.1, "étape")
    open_rows = ~h["is_closed"].astype(bool)
    h.loc[open_rows & (rng.random(len(h)) < 0.05), "close_date"] = pd.NaT
    early = pd.Timestamp("2000-01-03")
    got = frame_inputs(h, [early, *ORIGINS])
    assert got[ORIGINS[2]].open["close_date"].isna().any()
    for name, keys in SORT_KEYS.items():
        assert getattr(got[early], name).empty
        for o in ORIGINS:
            f = getattr(got[o], name)
            # (the synthetic org books no win with a future close date)
            assert len(f) > 0 or name == "won_future", (name, o)
            want = f.sort_values(keys, kind="stable").reset_index(drop=True)
            pd.testing.assert_frame_equal(f, want, check_exact=True)
            assert not f.duplicated(keys).any()
