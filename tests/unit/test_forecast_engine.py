"""Forecast as of D: no look-ahead, reconciliation, pipeline model, selection."""

import numpy as np
import pandas as pd
import pytest

from forecasts.engine import forecast_as_of, get_config
from forecasts.pipeline import expected_bookings, slippage_histogram, win_rates
from forecasts.series import (
    TOTAL,
    bookings_as_of,
    build_series,
    known_at,
    prepare_history,
    reconcile,
)
from forecasts.synthetic import synthetic_history

SMALL = {
    "horizon": 3,
    "pipeline_horizon": 2,
    "backtest_origins": 2,
    "calibration_origins": 4,
    "bands": ((1, 1), (2, 3)),
    "ets_configs": (("add", True, "add"),),
    "arima_orders": ((1, 0, 0),),
}


@pytest.fixture(scope="module")
def history():
    h, _ = synthetic_history(start="2023-01-02", end="2025-09-01", seed=3, deals_per_day=5)
    return prepare_history(h)


def _interval(oid, vf, vt, stage, close, won=False, closed=False, amount=100.0):
    return {
        "opportunity_id": oid,
        "valid_from": pd.Timestamp(vf),
        "valid_to": pd.Timestamp(vt) if vt else pd.NaT,
        "stage_name": stage,
        "amount_usd": amount,
        "close_date": pd.Timestamp(close),
        "probability": 0.5,
        "is_closed": closed,
        "is_won": won,
        "segment": "SMB",
        "region": "NA",
    }


def test_win_recorded_after_as_of_is_invisible_even_if_backdated():
    h = prepare_history(
        pd.DataFrame(
            [
                _interval("a", "2025-01-02", "2025-03-03 10:00", "Proposal", "2025-02-20"),
                # won on 2025-03-03 with close date backdated to 2025-02-27
                _interval("a", "2025-03-03 10:00", None, "Closed Won", "2025-02-27", True, True),
                _interval("b", "2025-01-05", "2025-02-10", "Proposal", "2025-02-10"),
                _interval("b", "2025-02-10", None, "Closed Won", "2025-02-10", True, True, 50.0),
            ]
        )
    )
    at_march_1 = bookings_as_of(h, "2025-03-01")
    assert list(at_march_1["opportunity_id"]) == ["b"]
    at_march_4 = bookings_as_of(h, "2025-03-04")
    assert sorted(at_march_4["opportunity_id"]) == ["a", "b"]
    s = build_series(at_march_4, "M", "2025-03-04", segments=["SMB", "Enterprise"])
    assert s[TOTAL].loc["2025-02-01"] == 150.0
    assert s["segment=SMB"].loc["2025-02-01"] == 150.0
    assert s["segment=Enterprise"].loc["2025-02-01"] == 0.0


def test_pipeline_learns_win_rate_and_slippage_by_hand():
    rows = []
    # 4 closed deals that were in Proposal: 3 won, 1 lost -> (3 + 5*0.6) / (4 + 5)
    for i, won in enumerate([True, True, True, False]):
        rows.append(_interval(f"c{i}", "2025-01-01", "2025-02-01", "Proposal", "2025-01-25"))
        rows.append(
            _interval(
                f"c{i}",
                "2025-02-01",
                None,
                "Closed Won" if won else "Closed Lost",
                "2025-02-01",
                won,
                True,
            )
        )
    # open deal, amount 1000, expected close 2025-03-10
    rows.append(_interval("o", "2025-02-15", None, "Proposal", "2025-03-10", amount=1000.0))
    h = prepare_history(pd.DataFrame(rows))
    p = win_rates(h, "2025-03-01")
    assert p["Proposal"] == pytest.approx((3 + 5 * 0.6) / 9)
    hist = slippage_histogram(h, "2025-03-01")
    # every won deal slipped exactly 7 days (close 2025-01-25 -> 2025-02-01)
    from forecasts.pipeline import SLIP_MIN

    assert hist[7 - SLIP_MIN] == pytest.approx(1.0)
    e = expected_bookings(h, "2025-03-01", "M", 2)
    tot = e[e["series_key"] == TOTAL].set_index("horizon")["expected"]
    # closes 2025-03-17: all in March (horizon 1)
    assert tot[1] == pytest.approx(1000 * (3 + 3) / 9)
    assert tot[2] == pytest.approx(0.0)
    # the open deal is not visible before it was created
    e0 = expected_bookings(h, "2025-02-10", "M", 2)
    assert e0.empty or e0["expected"].sum() == pytest.approx(0.0)


def test_reconcile_makes_children_sum_to_total():
    t = pd.DataFrame(
        {
            "series_key": ["total", "segment=A", "segment=B", "region=X", "region=Y"],
            "period_start": pd.Timestamp("2025-01-01"),
            "point": [100.0, 30.0, 50.0, 60.0, 60.0],
            "lo80": [80.0, 20.0, 40.0, 50.0, 50.0],
            "hi80": [120.0, 40.0, 60.0, 70.0, 70.0],
            "lo95": [70.0, 10.0, 30.0, 40.0, 40.0],
            "hi95": [130.0, 50.0, 70.0, 80.0, 80.0],
        }
    )
    r = reconcile(t).set_index("series_key")
    assert r.loc[["segment=A", "segment=B"], "point"].sum() == pytest.approx(100.0)
    assert r.loc["segment=A", "point"] == pytest.approx(30 * 100 / 80)
    assert r.loc["segment=A", "hi95"] == pytest.approx(50 * 100 / 80)
    assert r.loc[["region=X", "region=Y"], "point"].sum() == pytest.approx(100.0)
    assert r.loc["total", "point"] == 100.0


@pytest.fixture(scope="module")
def run(history):
    return forecast_as_of(history, "2025-07-01", "monthly", get_config("monthly", **SMALL))


def test_forecast_table_reconciles_and_is_well_formed(run):
    f = run.forecast
    assert set(f["horizon"]) == {1, 2, 3}
    assert f["period_start"].min() == pd.Timestamp("2025-07-01")
    for _, g in f.groupby("period_start"):
        total = g.loc[g["series_key"] == TOTAL, "point"].item()
        assert g.loc[
            g["segment"].ne("ALL") & g["region"].eq("ALL"), "point"
        ].sum() == pytest.approx(total)
        assert g.loc[
            g["region"].ne("ALL") & g["segment"].eq("ALL"), "point"
        ].sum() == pytest.approx(total)
    assert (f["lo95"] <= f["lo80"]).all() and (f["lo80"] <= f["point"] + 1e-6).all()
    assert (f["point"] <= f["hi80"] + 1e-6).all() and (f["hi80"] <= f["hi95"]).all()
    assert set(run.selection["model"]) <= {"snaive", "ets", "arima", "pipeline", "combo"}
    # the backtest only scores periods complete before the as-of date
    assert run.backtest["period_start"].max() < pd.Timestamp("2025-07-01")


def test_forecast_as_of_d_unchanged_when_later_data_is_appended(history, run):
    """The world as recorded up to D vs. the full history (later stage changes, wins entered
    late with backdated close dates, new deals): the forecast as of D must be identical."""
    past = known_at(history, "2025-07-01")
    assert len(past) < len(history)
    again = forecast_as_of(past, "2025-07-01", "monthly", get_config("monthly", **SMALL))
    pd.testing.assert_frame_equal(again.forecast, run.forecast)
    pd.testing.assert_frame_equal(
        again.backtest.reset_index(drop=True), run.backtest.reset_index(drop=True)
    )


def test_selection_uses_lowest_backtest_wape(run):
    from forecasts import metrics

    bt, sel = run.backtest, run.selection
    row = sel[(sel["series_key"] == TOTAL) & (sel["band_lo"] == 1)].iloc[0]
    g = bt[(bt["series_key"] == TOTAL) & (bt["horizon"] == 1)]
    wapes = {m: metrics.wape(x["actual"], x["point"]) for m, x in g.groupby("model")}
    assert row["model"] == min(wapes, key=wapes.get)
    assert np.isclose(row["wape"], wapes[row["model"]])


def test_reconcile_splits_total_by_share_when_children_forecast_zero():
    t = pd.DataFrame(
        {
            "series_key": ["total", "segment=A", "segment=B"],
            "period_start": pd.Timestamp("2025-01-01"),
            "point": [100.0, 0.0, 0.0],
            "lo80": [80.0, 0.0, 0.0],
            "hi80": [120.0, 0.0, 0.0],
            "lo95": [70.0, 0.0, 0.0],
            "hi95": [130.0, 0.0, 0.0],
        }
    )
    r = reconcile(t, fallback_share={"segment=A": 0.25, "segment=B": 0.75}).set_index("series_key")
    assert r.loc["segment=A", "point"] == pytest.approx(25.0)
    assert r.loc["segment=B", "hi95"] == pytest.approx(97.5)
