"""The forecast floor (forecasts.floor.direct_fits, benchmarks/forecast.py `floor_on`) does the
same model fits as the pipeline on a cold cache: the same (origin, series, model) set, on the
same series (so the same forecasts), with one direct SQL query per origin."""

import duckdb
import numpy as np
import pandas as pd
import pytest

from forecasts.engine import get_config
from forecasts.floor import direct_fits
from forecasts.publish import run_forecast_partition
from forecasts.synthetic import synthetic_history

CFG = get_config(
    "monthly",
    horizon=3,
    pipeline_horizon=2,
    backtest_origins=2,
    calibration_origins=4,
    bands=((1, 1), (2, 3)),
    ets_configs=(("add", True, None),),
    arima_orders=((1, 0, 0),),
)
AS_OF = pd.Timestamp("2025-07-01")
VALUES = ["point", "lo80", "hi80", "lo95", "hi95"]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    h, _ = synthetic_history(start="2024-01-01", end="2025-08-15", seed=3, deals_per_day=4)
    h["close_date"] = h["close_date"].dt.date
    path = tmp_path_factory.mktemp("floor") / "w.duckdb"
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE SCHEMA marts")
        con.register("h", h)
        con.execute("CREATE TABLE marts.opportunity_history AS SELECT * FROM h")
    finally:
        con.close()
    return path


def test_floor_fits_what_a_cold_pipeline_run_fits(warehouse):
    res = run_forecast_partition(
        "monthly", AS_OF, "cold", warehouse, config=CFG, use_cache=False, workers=1
    )
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        fl = direct_fits(con, "monthly", AS_OF, config=CFG)
        snaive = direct_fits(con, "monthly", AS_OF, config=CFG, snaive_only=True)
    finally:
        con.close()
    pipeline = res.run.fitted
    assert len(pipeline) == res.run.timings["fits"] and res.run.timings["cached"] == 0
    assert len(set(pipeline)) == len(pipeline) and len(set(fl.fitted)) == len(fl.fitted)
    assert set(fl.fitted) == set(pipeline)
    # 3 origins (as-of + 2 backtest) x 7 series x (ets, arima), planted by the config
    assert len(pipeline) == 3 * 7 * 2 and fl.origins == 3
    assert snaive.fitted == [] and snaive.origins == 3
    # the same series: the floor's forecasts at the as-of are the pipeline's candidates
    cands = res.run.candidates
    for o, key, model in fl.fitted:
        if o != AS_OF:
            continue
        got = cands[(cands["series_key"] == key) & (cands["model"] == model)].sort_values("horizon")
        np.testing.assert_allclose(got[VALUES].to_numpy(), fl.forecasts[(o, key, model)], rtol=0)
