"""The fit cache: reuse is bit-identical, the next period refits only its new origin, changed
input or a changed model grid invalidates exactly the affected entries."""

import shutil

import duckdb
import numpy as np
import pandas as pd
import pytest

from forecasts.engine import forecast_origins, get_config
from forecasts.publish import run_forecast_partition
from forecasts.series import known_at
from forecasts.synthetic import synthetic_history

CFG = get_config(
    "monthly",
    horizon=3,
    pipeline_horizon=2,
    backtest_origins=1,
    calibration_origins=4,
    bands=((1, 1), (2, 3)),
    ets_configs=(("add", True, None),),
    arima_orders=((1, 0, 0),),
)
AS_OF = pd.Timestamp("2025-07-01")
NEXT = pd.Timestamp("2025-08-01")
N_SERIES = 7  # total + 3 segments + 3 regions
VALUES = ["point", "lo80", "hi80", "lo95", "hi95"]


@pytest.fixture(scope="module")
def history():
    h, _ = synthetic_history(start="2024-01-01", end="2025-08-15", seed=5, deals_per_day=4)
    return h


def _warehouse(path, history: pd.DataFrame):
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS marts")
        h = history.copy()
        h["close_date"] = h["close_date"].dt.date
        con.register("h", h)
        con.execute("CREATE OR REPLACE TABLE marts.opportunity_history AS SELECT * FROM h")
    finally:
        con.close()
    return path


def _run(wh, as_of=AS_OF, cfg=CFG, use_cache=True):
    return run_forecast_partition(
        "monthly", as_of, "run", wh, config=cfg, now=pd.Timestamp("2025-08-02"), use_cache=use_cache
    )


def _same(a, b):
    """Forecasts, selection, backtest and ledger inputs bit-identical."""
    pd.testing.assert_frame_equal(a.run.forecast, b.run.forecast, check_exact=True)
    pd.testing.assert_frame_equal(
        a.run.selection.drop(columns="scores"),
        b.run.selection.drop(columns="scores"),
        check_exact=True,
    )
    pd.testing.assert_frame_equal(a.run.backtest, b.run.backtest, check_exact=True)
    pd.testing.assert_frame_equal(a.table[VALUES], b.table[VALUES], check_exact=True)


@pytest.fixture(scope="module")
def uncached(history, tmp_path_factory):
    wh = _warehouse(tmp_path_factory.mktemp("nc") / "w.duckdb", history)
    return _run(wh, use_cache=False)


@pytest.fixture(scope="module")
def first(history, tmp_path_factory):
    """A warehouse after one cached run as of AS_OF (tests copy it)."""
    wh = _warehouse(tmp_path_factory.mktemp("first") / "w.duckdb", history)
    return wh, _run(wh)


def _copy(first, tmp_path):
    return shutil.copy(first[0], tmp_path / "w.duckdb")


def test_rerun_reuses_every_fit_and_is_bit_identical(first, tmp_path, uncached):
    wh = _copy(first, tmp_path)
    first = first[1]
    n_origins = CFG.backtest_origins + 1
    assert first.run.timings["fits"] == n_origins * N_SERIES * 2  # ets + arima everywhere
    assert first.run.timings["cached"] == 0
    again = _run(wh)
    assert again.run.timings["fits"] == 0
    assert again.run.timings["cached"] == n_origins * N_SERIES * 2
    _same(first, uncached)
    _same(again, uncached)
    con = duckdb.connect(str(wh), read_only=True)
    try:
        led = con.execute(
            "SELECT series_key, horizon, point, lo80, hi95 FROM forecasts.ledger "
            "ORDER BY series_key, horizon"
        ).df()
        n_cache = con.execute("SELECT count(*) FROM forecasts.fit_cache").fetchone()[0]
    finally:
        con.close()
    want = uncached.table.sort_values(["series_key", "horizon"])
    np.testing.assert_array_equal(led["point"].to_numpy(), want["point"].to_numpy())
    np.testing.assert_array_equal(led["hi95"].to_numpy(), want["hi95"].to_numpy())
    assert n_cache == n_origins * N_SERIES * 2 * CFG.horizon  # one row per horizon


def test_next_period_fits_only_its_new_origin(history, first, tmp_path):
    wh = _copy(first, tmp_path)
    nxt = _run(wh, as_of=NEXT)
    # last month's final fit is this month's newest backtest origin: only NEXT is new
    assert {o for o, _, _ in nxt.run.fitted} == {NEXT}
    assert nxt.run.timings["fits"] == N_SERIES * 2
    fresh = _run(_warehouse(tmp_path / "fresh.duckdb", history), as_of=NEXT, use_cache=False)
    _same(nxt, fresh)


def test_changed_input_at_an_old_origin_refits_exactly_what_it_touches(history, first, tmp_path):
    wh = _copy(first, tmp_path)
    origins = [AS_OF - pd.DateOffset(months=k) for k in (1, 0)]
    # a deal recorded as won between the backtest origin and the as-of, closed the month
    # before: the 2025-07-01 origin sees it, the 2025-06-01 origin does not
    won = history.iloc[:1].copy()
    won["opportunity_id"] = "006NEW"
    won["valid_from"] = pd.Timestamp("2025-06-20 10:00")
    won["valid_to"] = pd.NaT
    won["close_date"] = pd.Timestamp("2025-05-15")
    won["stage_name"], won["is_won"], won["is_closed"] = "Closed Won", True, True
    won["segment"], won["region"], won["amount_usd"] = "Enterprise", "APAC", 250_000.0
    changed = pd.concat([history, won], ignore_index=True)
    _warehouse(wh, changed)
    res = _run(wh)
    touched = {"total", "segment=Enterprise", "region=APAC"}
    want = {(o, s, m) for o in origins[1:] for s in touched for m in ("ets", "arima")}
    assert set(res.run.fitted) == want
    fresh = _run(_warehouse(tmp_path / "fresh.duckdb", changed), use_cache=False)
    _same(res, fresh)
    # the world as known at AS_OF is unchanged by later data: nothing to refit
    _warehouse(wh, known_at(changed, AS_OF))
    assert _run(wh).run.timings["fits"] == 0


def test_changed_model_grid_refits_that_model_only(first, tmp_path):
    wh = _copy(first, tmp_path)
    from dataclasses import replace

    cfg2 = replace(CFG, arima_orders=((0, 0, 1),))
    res = _run(wh, cfg=cfg2)
    assert {m for _, _, m in res.run.fitted} == {"arima"}
    assert res.run.timings["fits"] == (CFG.backtest_origins + 1) * N_SERIES
    assert len(forecast_origins(AS_OF, CFG)) > CFG.backtest_origins + 1  # pipeline origins
