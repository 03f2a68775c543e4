"""Statistical models: shapes, determinism, planted structure, interval coverage."""

import numpy as np
import pandas as pd
import pytest

from forecasts.backtest import origin_ends, rolling_origin
from forecasts.models import arima, ets, fit_forecast, seasonal_naive, to_series


def _monthly(n=60, seed=7, sigma=40.0):
    """Planted: level 1000, trend +12/month, yearly sine amplitude 250, iid N(0, sigma)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = 1000 + 12 * t + 250 * np.sin(2 * np.pi * t / 12) + rng.normal(0, sigma, n)
    return to_series(y, "2020-01-01", "M")


def test_seasonal_naive_repeats_last_season_with_hand_interval():
    y = to_series(np.arange(1.0, 27.0), "2024-01-01", "M")  # 26 months, lag 12
    fc = seasonal_naive(y, 14, "M")
    # last season = values 15..26, then repeats
    assert list(fc.point[:12]) == list(np.arange(15.0, 27.0))
    assert fc.point[12] == 15.0
    # residuals y_t - y_{t-12} are all 12 -> RMSE 12; h<=12 sd = 12, h=13 sd = 12*sqrt(2)
    assert fc.hi95[0] - fc.point[0] == pytest.approx(1.959964 * 12, rel=1e-5)
    assert fc.hi95[12] - fc.point[12] == pytest.approx(1.959964 * 12 * np.sqrt(2), rel=1e-5)
    assert fc.index[0] == pd.Timestamp("2026-03-01")


def test_models_are_deterministic_and_ordered_bounds():
    y = _monthly()
    for name in ("snaive", "ets", "arima"):
        a, b = fit_forecast(name, y, 6, "M"), fit_forecast(name, y, 6, "M")
        np.testing.assert_array_equal(a.point, b.point)
        assert (a.lo95 <= a.lo80).all() and (a.lo80 <= a.point).all()
        assert (a.point <= a.hi80).all() and (a.hi80 <= a.hi95).all()
        assert len(a.point) == 6


def test_ets_and_arima_recover_planted_seasonal_shape():
    y = _monthly(sigma=20.0)
    t = np.arange(60, 66)
    truth = 1000 + 12 * t + 250 * np.sin(2 * np.pi * t / 12)
    for fc in (ets(y, 6, "M"), arima(y, 6, "M")):
        # close to the noiseless truth: well within 2 noise sd on average
        assert np.mean(np.abs(fc.point - truth)) < 45, fc.info


def test_non_negative_series_is_clipped_and_negative_series_is_not():
    y = to_series([5.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0], "2024-01-01", "W")
    assert (seasonal_naive(y, 4, "W").lo95 >= 0).all()
    yneg = to_series([-5.0, 1.0, -3.0, 2.0, -1.0, 0.5, -2.0, 1.0, -1.0, 0.0], "2024-01-01", "W")
    assert (seasonal_naive(yneg, 4, "W").lo95 < 0).any()


def test_too_short_and_bad_values_raise_clear_errors():
    with pytest.raises(ValueError, match="too short"):
        ets(to_series([1.0, 2.0], "2024-01-01", "M"), 3, "M")
    y = to_series([1.0, np.nan, 3.0, 4.0], "2024-01-01", "M")
    with pytest.raises(ValueError, match="2024-02-01"):
        arima(y, 3, "M")
    with pytest.raises(ValueError, match="freq"):
        seasonal_naive(_monthly(), 3, "Q")


def test_origin_ends_are_the_last_n_one_step_apart():
    assert origin_ends(30, 3, 4) == [24, 25, 26, 27]
    with pytest.raises(ValueError, match="too short"):
        origin_ends(12, 3, 4)


def test_backtest_on_planted_series_beats_seasonal_naive_and_covers_nominally():
    """Planted trend + seasonality: the picked model must beat seasonal naive (which misses the
    trend); its 80/95% intervals must cover near the nominal rates."""
    y = _monthly(n=72, seed=11)
    res = rolling_origin(y, "M", horizon=3, origins=12, models=("snaive", "ets"))
    s = res.summary.set_index("model")
    assert res.chosen == "ets"
    assert s.at[res.chosen, "mase"] < 0.8 * s.at["snaive", "mase"]
    assert s.at[res.chosen, "wape"] < s.at["snaive", "wape"]
    # 36 forecasts per model: binomial sd at 80% ~ 6.7 pts, at 95% ~ 3.6 pts
    assert 0.65 <= s.at[res.chosen, "coverage80"] <= 0.97
    assert s.at[res.chosen, "coverage95"] >= 0.83
    # MASE of the records by hand for one model
    r = res.records[res.records["model"] == "snaive"]
    by_hand = np.mean(np.abs(r["actual"] - r["point"]) / r["scale"])
    assert s.at["snaive", "mase"] == pytest.approx(by_hand)


def test_backtest_on_simulator_planted_bookings_curve():
    """The org simulator's planted monthly bookings curve (growth 30%/year, yearly season,
    quarter-end pull) with 5% multiplicative noise: the picked model beats seasonal naive."""
    import datetime as dt

    from sandbox.org import generate

    org = generate("small", seed=42, end=dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
    truth = org.truth["bookings"]
    assert truth["growth_per_year"] > 0
    curve = pd.Series(truth["monthly_usd_noiseless"])
    y = pd.Series(curve.to_numpy(), index=pd.to_datetime(curve.index + "-01"))
    y = y[(y.index > y.index[0]) & (y.index < pd.Timestamp("2026-11-01"))]  # whole months
    y = y * (1 + np.random.default_rng(0).normal(0, 0.05, len(y)))
    res = rolling_origin(y, "M", horizon=3, origins=6)
    s = res.summary.set_index("model")
    assert res.chosen != "snaive"
    assert s.at[res.chosen, "mase"] < 0.6 * s.at["snaive", "mase"]
    assert s.at[res.chosen, "wape"] < 0.15
    assert s.at[res.chosen, "coverage95"] >= 0.7  # 18 forecasts
