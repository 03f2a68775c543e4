"""HTML report rendering is self-contained and shows what the UI shows."""

from __future__ import annotations

import datetime as dt
import re

from reports.quality_report import ReportData, render_report, sparkline, trend_svg


def _data():
    t0 = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    runs = [
        {
            "run_id": f"r{i}",
            "checked_at": t0 + dt.timedelta(days=i),
            "score": s,
            "tables": 1,
            "blocked": int(s < 0.98),
        }
        for i, s in enumerate([0.995, 0.99, 0.97])
    ]
    table = {
        "table": "salesforce.opportunity",
        "run_id": "r2",
        "score": 0.97,
        "passed": False,
        "severity": "ERROR",
        "rows": 100,
        "failed_rows": 3,
        "quarantined_rows": 1,
        "dimension_scores": {"validity": 0.98, "integrity": 0.99},
        "trend": [0.995, 0.99, 0.97],
        "errors": [],
        "results": [
            {
                "expectation": "opportunity.amount.non_negative",
                "dimension": "validity",
                "column": "amount",
                "checked": 100,
                "failed": 2,
                "pass_pct": 98.0,
                "hard": False,
            }
        ],
        "samples": [
            {
                "record_id": "006000000000042",
                "rule": "opportunity.amount.non_negative",
                "dimension": "validity",
                "column": "amount",
                "tier": "",
                "reason": "Opportunity.Amount = -5.0 <script>",
            }
        ],
    }
    return ReportData(
        t0, [table], runs, 0.98, "r2", [{"object": "Opportunity", "rule": "x", "n": 1}]
    )


def test_report_contains_tables_ids_and_no_external_resources():
    html = render_report(_data())
    assert "006000000000042" in html and "salesforce.opportunity" in html
    assert "BLOCKED" in html and "97.00%" in html
    assert "&lt;script&gt;" in html and "<script" not in html
    assert not re.search(r"https?://|src=|<link", html)
    assert html.count("<svg") == 2  # trend chart + sparkline


def test_trend_svg_plots_every_run_and_the_gate():
    svg = trend_svg(_data().runs, 0.98)
    assert svg.count("<circle") == 3 and "gate 98%" in svg
    assert svg.count('fill="#ab091e"') == 1  # the blocked run is red
    assert trend_svg([], 0.98).startswith("<p")
    assert sparkline([None, None], 0.98) == ""
    assert "<polyline" in sparkline([1.0, 0.99, None, 0.97], 0.98)


def test_overall_trend_carries_forward_tables_a_run_did_not_check():
    from reports.quality_report import overall_by_run

    h = [
        {
            "run_id": "a",
            "checked_at": 1,
            "table": "t1",
            "rows": 100,
            "failed_rows": 1,
            "passed": True,
        },
        {
            "run_id": "a",
            "checked_at": 1,
            "table": "t2",
            "rows": 900,
            "failed_rows": 9,
            "passed": True,
        },
        {
            "run_id": "b",
            "checked_at": 2,
            "table": "t1",
            "rows": 100,
            "failed_rows": 5,
            "passed": False,
        },
    ]
    runs = overall_by_run(h)
    assert [r["run_id"] for r in runs] == ["a", "b"]
    assert runs[0]["score"] == 0.99
    assert runs[1]["score"] == 1 - 14 / 1000 and runs[1]["tables"] == 2
    assert runs[1]["blocked"] == 1
    assert overall_by_run(h, max_runs=1) == runs[1:]
