"""The fit pool: fits done in other processes, or ahead of time, or once for identical inputs
give exactly the values of fitting one by one in this process, and the stage's results (forecast,
candidates, backtest, selection, fit counts) are identical to the serial on-demand path."""

import numpy as np
import pandas as pd
import pytest

from forecasts import fitpool
from forecasts.engine import fit_plan, forecast_as_of, forecast_origins, get_config
from forecasts.fitpool import FitTask, fit_values, run_fits
from forecasts.inputs import frame_inputs
from forecasts.models import to_series
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


def _weekly(seed: int, n: int = 40) -> pd.Series:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    vals = 100 + 0.5 * t + 20 * np.sin(2 * np.pi * t / 52) + rng.normal(0, 5, n)
    return to_series(vals, "2024-01-01", "W")


def _tasks() -> list[FitTask]:
    # short weekly series: non-seasonal ETS variants, drift ARIMA (cheap, real statsmodels fits)
    grid_ets = (("add", True, None), (None, False, None))
    grid_arima = (((1, 0, 0),), ((0, 1, 1),))
    out = []
    for seed in (1, 2):
        y = _weekly(seed)
        out += [FitTask("ets", y, 4, "W", grid_ets), FitTask("arima", y, 4, "W", grid_arima)]
    return out


def test_fits_in_another_process_equal_fits_here():
    tasks = _tasks()
    here = [fit_values(t) for t in tasks]
    # every fit in the extra process (this one only waits)
    pooled, stats = run_fits(tasks, workers=2, min_pool_fits=1, fit_here=False)
    assert stats.workers == 2 and stats.in_workers == len(tasks)
    for a, b in zip(here, pooled, strict=True):
        assert a.shape == (4, 5) and np.isfinite(a).all()
        np.testing.assert_array_equal(a, b)  # bit-identical


def test_identical_fits_are_done_once_and_different_ones_are_not_merged():
    y = _weekly(7)
    same = y.copy()  # another series with the same values and periods
    shifted = pd.Series(y.to_numpy(), index=y.index + pd.Timedelta(weeks=1))  # other periods
    grid = (("add", True, None),)
    tasks = [
        FitTask("ets", y, 3, "W", grid),
        FitTask("ets", same, 3, "W", grid),
        FitTask("ets", shifted, 3, "W", grid),
        FitTask("ets", y, 3, "W", (("add", True, None), (None, False, None))),  # other grid
    ]
    values, stats = run_fits(tasks, workers=1)
    assert stats.tasks == 4 and stats.distinct == 3
    np.testing.assert_array_equal(values[0], values[1])
    np.testing.assert_array_equal(values[0], fit_values(tasks[0]))
    np.testing.assert_array_equal(values[3], fit_values(tasks[3]))


def test_workers_setting(monkeypatch):
    monkeypatch.setenv(fitpool.WORKERS_ENV, "3")
    assert fitpool.default_workers() == 3
    monkeypatch.setenv(fitpool.WORKERS_ENV, "0")
    with pytest.raises(ValueError, match="SALESOPS_FORECAST_WORKERS"):
        fitpool.default_workers()
    monkeypatch.delenv(fitpool.WORKERS_ENV)
    monkeypatch.setattr(fitpool.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(fitpool.os, "getloadavg", lambda: (0.5, 0.5, 0.5))
    assert fitpool.default_workers() == fitpool.MAX_DEFAULT_WORKERS == 2  # capped
    monkeypatch.setattr(fitpool.os, "getloadavg", lambda: (5.0, 5.0, 5.0))
    assert fitpool.default_workers() == 1  # 4 CPUs, load 5: no idle core


@pytest.fixture(scope="module")
def inputs():
    h, _ = synthetic_history(start="2024-01-01", end="2025-08-15", seed=11, deals_per_day=4)
    return frame_inputs(h, forecast_origins(AS_OF, CFG))


def test_pooled_run_equals_the_serial_on_demand_run(inputs, monkeypatch):
    serial = forecast_as_of(None, AS_OF, "monthly", CFG, inputs=inputs, ahead=False)
    monkeypatch.setattr(fitpool, "MIN_POOL_FITS", 1)
    pooled = forecast_as_of(None, AS_OF, "monthly", CFG, inputs=inputs, workers=2)
    assert pooled.timings["fit_workers"] == 2
    for a, b in (
        (serial.forecast, pooled.forecast),
        (serial.candidates, pooled.candidates),
        (serial.backtest, pooled.backtest),
        (serial.selection.drop(columns="scores"), pooled.selection.drop(columns="scores")),
    ):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert serial.fitted == pooled.fitted  # same fits, same order
    # every planned fit was fitted (2 origins x 7 series x 2 models), none counted as reused
    n = 2 * 7 * 2
    assert len(fit_plan(inputs, AS_OF, CFG)) == n
    assert serial.timings["fits"] == pooled.timings["fits"] == n
    assert serial.timings["cached"] == pooled.timings["cached"] == 0
