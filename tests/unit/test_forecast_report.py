"""Executive report: movements and accuracy trend by hand; HTML is self-contained."""

import pandas as pd
import pytest

from forecasts.series import prepare_history
from reports.executive_report import (
    ReportData,
    accuracy_trend,
    movements_since,
    render_html,
    render_markdown,
)


def _iv(oid, vf, vt, stage, close, amount, closed=False, won=False):
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


def test_movements_between_two_as_of_dates():
    h = prepare_history(
        pd.DataFrame(
            [
                _iv("won", "2025-01-01", "2025-03-03", "Proposal", "2025-03-05", 500.0),
                _iv("won", "2025-03-03", None, "Closed Won", "2025-03-03", 500.0, True, True),
                _iv("lost", "2025-01-01", "2025-03-04", "Proposal", "2025-03-05", 300.0),
                _iv("lost", "2025-03-04", None, "Closed Lost", "2025-03-04", 300.0, True, False),
                _iv("push", "2025-01-01", "2025-03-04", "Negotiation", "2025-03-05", 200.0),
                _iv("push", "2025-03-04", None, "Negotiation", "2025-05-30", 200.0),
                _iv("new", "2025-03-05", None, "Prospecting", "2025-06-30", 50.0),
                _iv("same", "2025-01-01", None, "Proposal", "2025-06-30", 999.0),
            ]
        )
    )
    mv = movements_since(h, "2025-03-01", "2025-03-08").set_index("opportunity_id")
    assert mv.loc["won", "move"] == "won" and mv.loc["won", "impact_usd"] == 500.0
    assert mv.loc["lost", "move"] == "lost" and mv.loc["lost", "impact_usd"] == -300.0
    assert mv.loc["push", "move"] == "pushed" and mv.loc["push", "impact_usd"] == -200.0
    assert mv.loc["new", "move"] == "new"
    assert "same" not in mv.index
    assert list(mv.index) == ["won", "lost", "push", "new"]  # by |impact|


def _data():
    actuals = pd.Series([100.0, 200.0], index=pd.to_datetime(["2025-01-06", "2025-01-13"]))
    fc = pd.DataFrame(
        {
            "series_key": "total",
            "horizon": [1, 2],
            "period_start": pd.to_datetime(["2025-01-20", "2025-01-27"]),
            "model": "ets",
            "point": [150.0, 160.0],
            "lo80": [120.0, 125.0],
            "hi80": [180.0, 190.0],
            "lo95": [100.0, 105.0],
            "hi95": [200.0, 210.0],
        }
    )
    ledger = pd.DataFrame(
        {
            "as_of": pd.to_datetime(["2025-01-06", "2025-01-13"]),
            "series_key": "total",
            "horizon": 1,
            "period_start": pd.to_datetime(["2025-01-06", "2025-01-13"]),
            "point": [90.0, 250.0],
        }
    )
    acc = pd.DataFrame({"series_key": ["total"], "horizon": [1], "accuracy": [0.9]})
    mv = pd.DataFrame(
        columns=["opportunity_id", "move", "stage", "impact_usd", "segment", "region", "close_date"]
    )
    return ReportData("weekly", pd.Timestamp("2025-01-20"), actuals, fc, ledger, acc, 620.0, mv)


def test_accuracy_trend_and_html_are_right_and_self_contained():
    d = _data()
    tr = accuracy_trend(d)
    # 1 - |100-90|/100 = 0.9 ; 1 - |200-250|/200 = 0.75
    assert tr["accuracy"].tolist() == pytest.approx([0.9, 0.75])
    html = render_html(d)
    assert html.count("<svg") == 2 and "<polygon" in html  # chart with interval bands
    stripped = html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "http://" not in stripped and "https://" not in stripped and "<script" not in html
    assert "2.00×" in html  # coverage = 620 / (150 + 160)
    md = render_markdown(d)
    assert "| pipeline coverage | 2.00× |" in md
    assert "| ledger accuracy h=1 | 82.5% |" in md


# --- load_report_data: the report computed in DuckDB equals the pandas route ------------------


def _random_history(seed: int, n: int = 1500) -> pd.DataFrame:
    """Opportunities moving through stages; some won / lost / pushed around the as-of dates."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = []
    stages = ["Prospecting", "Proposal", "Negotiation"]
    for k in range(n):
        t = pd.Timestamp("2024-06-01") + pd.Timedelta(hours=int(rng.integers(0, 24 * 480)))
        close = (t + pd.Timedelta(days=int(rng.integers(5, 120)))).normalize()
        amount = float(rng.integers(1, 100_000)) + k / 1000  # distinct |impact|: no ties
        seg = rng.choice(["SMB", "MM", None])
        for step in range(int(rng.integers(1, 5))):
            nxt = t + pd.Timedelta(hours=int(rng.integers(1, 24 * 40)))
            last = step == 3 or rng.random() < 0.3
            closed = last and rng.random() < 0.7
            won = closed and rng.random() < 0.4
            rows.append(
                _iv(
                    f"006{k:05d}",
                    t,
                    None if last else nxt,
                    "Closed Won" if won else "Closed Lost" if closed else stages[step % 3],
                    close,
                    None if rng.random() < 0.02 else amount,
                    closed,
                    won,
                )
                | {"segment": seg, "region": rng.choice(["NA", "EMEA"])}
            )
            if last:
                break
            t = nxt
            if rng.random() < 0.3:
                close = close + pd.Timedelta(days=int(rng.integers(1, 30)))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("cadence, as_of", [("weekly", "2025-09-15"), ("monthly", "2025-10-01")])
def test_report_data_from_duckdb_equals_the_pandas_route(cadence, as_of):
    import duckdb

    from forecasts.store import ensure_schema
    from reports.executive_report import build_report_data, load_report_data

    raw = _random_history(11)
    con = duckdb.connect()
    con.execute("set TimeZone = 'America/Los_Angeles'")  # the SQL must not depend on it
    con.execute("create schema marts")
    con.register("raw", raw)
    con.execute(
        "create table marts.opportunity_history as select * replace ("
        "timezone('UTC', valid_from::timestamp) as valid_from, "
        "timezone('UTC', valid_to::timestamp) as valid_to, close_date::date as close_date) "
        "from raw"
    )
    ensure_schema(con)
    fc = _data().forecast.assign(as_of=pd.Timestamp(as_of).date(), cadence=cadence, horizon=[1, 3])
    con.register("fc", fc)
    con.execute(
        "insert into forecasts.forecasts by name select as_of, cadence, series_key, horizon, "
        "period_start, model, point, lo80, hi80, lo95, hi95 from fc"
    )
    got = load_report_data(con, cadence, as_of)
    want = build_report_data(
        prepare_history(raw), got.forecast, got.ledger, got.backtest_accuracy, cadence, as_of
    )
    assert len(want.actuals) >= 16 and want.actuals.sum() > 0
    pd.testing.assert_series_equal(got.actuals, want.actuals, rtol=1e-12, check_freq=False)
    assert want.open_pipeline > 0
    assert got.open_pipeline == pytest.approx(want.open_pipeline, rel=1e-12)
    assert len(want.movements) == 10
    text = {"stage": str, "segment": str, "region": str}
    pd.testing.assert_frame_equal(
        got.movements.astype(text), want.movements.astype(text), check_dtype=False
    )
    # deeper than the top 10: every kind of move, same rows and order
    deep = load_report_data(con, cadence, as_of, top=400).movements
    prev = want.as_of - (pd.Timedelta(weeks=1) if cadence == "weekly" else pd.DateOffset(months=1))
    deep_want = movements_since(prepare_history(raw), prev, want.as_of, top=400)
    assert set(deep_want["move"]) == {"new", "won", "lost", "pushed"}
    assert len(deep_want) < 400  # all moves, not a cut
    pd.testing.assert_frame_equal(deep.astype(text), deep_want.astype(text), check_dtype=False)
    assert render_markdown(got) == render_markdown(want)
