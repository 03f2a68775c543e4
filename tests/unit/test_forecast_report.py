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
