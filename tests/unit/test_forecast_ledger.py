"""Ledger scoring against hand-computed numbers."""

import datetime as dt

import pandas as pd
import pytest

from forecasts.ledger import LEDGER_COLUMNS, score_ledger


def _row(as_of, start, end, h, point, lo80, hi80, lo95, hi95, cadence="weekly", key="total"):
    return {
        "as_of": as_of,
        "cadence": cadence,
        "period_start": start,
        "period_end": end,
        "horizon": h,
        "series_key": key,
        "model": "ets",
        "point": point,
        "lo80": lo80,
        "hi80": hi80,
        "lo95": lo95,
        "hi95": hi95,
        "run_id": "r1",
        "published_at": dt.datetime(2026, 1, 1),
    }


def test_score_ledger_by_hand():
    d = dt.date
    ledger = pd.DataFrame(
        [
            # two weekly forecasts at horizon 1, one at horizon 2, one not yet due
            _row(d(2026, 1, 5), d(2026, 1, 5), d(2026, 1, 11), 1, 110, 100, 120, 90, 130),
            _row(d(2026, 1, 12), d(2026, 1, 12), d(2026, 1, 18), 1, 180, 170, 190, 150, 210),
            _row(d(2026, 1, 5), d(2026, 1, 12), d(2026, 1, 18), 2, 150, 140, 160, 120, 220),
            _row(d(2026, 1, 12), d(2026, 1, 19), d(2026, 1, 25), 2, 999, 0, 2000, 0, 3000),
            # a monthly row whose start coincides with a week start must not match weekly actuals
            _row(d(2025, 12, 1), d(2026, 1, 5), d(2026, 2, 4), 1, 5, 0, 10, 0, 20, "monthly"),
        ]
    )
    assert list(ledger.columns) == LEDGER_COLUMNS
    actuals = pd.DataFrame(
        {
            "series_key": ["total", "total"],
            "period_start": [d(2026, 1, 5), d(2026, 1, 12)],
            "period_end": [d(2026, 1, 11), d(2026, 1, 18)],
            "actual": [100.0, 200.0],
        }
    )
    s = score_ledger(ledger, actuals).set_index(["cadence", "horizon"])
    assert list(s.index) == [("weekly", 1), ("weekly", 2)]
    h1 = s.loc[("weekly", 1)]
    # errors: 110 vs 100 -> 10, 180 vs 200 -> 20; WAPE = 30/300
    assert h1["n"] == 2
    assert h1["wape"] == pytest.approx(0.1)
    assert h1["accuracy"] == pytest.approx(0.9)
    assert not h1["meets_target"]  # 90% < 92%
    assert h1["mape"] == pytest.approx((0.1 + 0.1) / 2)
    assert h1["bias"] == pytest.approx((10 - 20) / 300)
    # 100 in [100, 120] yes; 200 in [170, 190] no -> 50%; 95%: [90,130] yes, [150,210] yes
    assert h1["coverage80"] == pytest.approx(0.5)
    assert h1["coverage95"] == pytest.approx(1.0)
    h2 = s.loc[("weekly", 2)]
    # 150 vs 200: WAPE 0.25, bias -0.25, 80% [140,160] misses, 95% [120,220] covers
    assert h2["n"] == 1
    assert h2["wape"] == pytest.approx(0.25)
    assert h2["bias"] == pytest.approx(-0.25)
    assert (h2["coverage80"], h2["coverage95"]) == (0.0, 1.0)


def test_meets_target_at_92_percent():
    d = dt.date
    ledger = pd.DataFrame([_row(d(2026, 1, 5), d(2026, 1, 5), d(2026, 1, 11), 1, 95, 0, 1, 0, 1)])
    actuals = pd.DataFrame(
        {
            "series_key": ["total"],
            "period_start": [d(2026, 1, 5)],
            "period_end": [d(2026, 1, 11)],
            "actual": [100.0],
        }
    )
    s = score_ledger(ledger, actuals)
    assert s["accuracy"].item() == pytest.approx(0.95)
    assert bool(s["meets_target"].item())


def test_accuracy_is_floored_at_zero_when_wape_exceeds_one():
    d = dt.date
    ledger = pd.DataFrame([_row(d(2026, 1, 5), d(2026, 1, 5), d(2026, 1, 11), 1, 350, 0, 1, 0, 1)])
    actuals = pd.DataFrame(
        {
            "series_key": ["total"],
            "period_start": [d(2026, 1, 5)],
            "period_end": [d(2026, 1, 11)],
            "actual": [100.0],
        }
    )
    s = score_ledger(ledger, actuals)
    assert s["wape"].item() == pytest.approx(2.5)
    assert s["accuracy"].item() == 0.0
