"""Score math and gate decision (pure, no database)."""

from __future__ import annotations

import pytest

from quality_checks.score import (
    RowCounts,
    RuleResult,
    TableResult,
    overall_dimension_scores,
    overall_score,
    row_score,
)


def _result(rows, failed_rows, hard_downstream=0, rules=None, errors=None, dims=None):
    dims = dims or {"completeness": (rows, failed_rows)}
    return TableResult(
        object="X",
        label="s.x",
        rules=rules or [],
        counts=RowCounts(
            rows=rows,
            failed_rows=failed_rows,
            dim_checked={d: c for d, (c, _) in dims.items()},
            dim_failed={d: f for d, (_, f) in dims.items()},
            hard_failed_rows=hard_downstream,
            hard_failed_downstream=hard_downstream,
        ),
        gate=0.98,
        errors=errors or [],
    )


def test_row_score_basics():
    assert row_score(0, 0) == 1.0
    assert row_score(200, 4) == 0.98
    with pytest.raises(ValueError):
        row_score(10, 11)


def test_gate_threshold_is_inclusive_and_severity_follows():
    assert _result(100, 2).passed and _result(100, 2).severity == "WARN"
    assert not _result(100, 3).passed and _result(100, 3).severity == "ERROR"
    assert _result(100, 0).severity == "OK"
    assert "score 97.00% < gate 98%" in _result(100, 3).why()


def test_hard_rule_must_hold_on_downstream_rows_even_when_score_is_high():
    r = _result(10_000, 1, hard_downstream=1)
    assert r.score > 0.999
    assert not r.passed and r.severity == "ERROR"
    assert "not quarantined" in r.why()


def test_validation_errors_fail_the_gate():
    r = _result(100, 0, errors=["x: GX error: boom"])
    assert not r.passed and "GX error" in r.why()


def test_row_weighted_not_value_weighted():
    # 30 rules x 100 rows, 3 rows each with one bad value: value share 99.9 %, row share 97 %
    rules = [
        RuleResult(f"r{i}", "validity", "c", "in_set", False, False, 100, 1 if i < 3 else 0)
        for i in range(30)
    ]
    r = _result(100, 3, rules=rules)
    assert r.value_pass_pct == pytest.approx(100 * (3000 - 3) / 3000)
    assert r.score == 0.97 and not r.passed


def test_overall_and_dimension_scores_weight_rows():
    a = _result(1000, 10, dims={"completeness": (1000, 10), "integrity": (500, 5)})
    b = _result(100, 5, dims={"completeness": (100, 5)})
    assert overall_score([a, b]) == pytest.approx(1 - 15 / 1100)
    dims = overall_dimension_scores([a, b])
    assert dims["completeness"] == pytest.approx(1 - 15 / 1100)
    assert dims["integrity"] == pytest.approx(0.99)
    assert a.dimension_scores == {"completeness": 0.99, "integrity": 0.99}


def test_rule_pass_pct():
    assert RuleResult("r", "validity", "c", "in_set", False, False, 0, 0).pass_pct == 100.0
    assert RuleResult("r", "validity", "c", "in_set", False, False, 8, 2).pass_pct == 75.0
