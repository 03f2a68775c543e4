"""Mart invariants are discovered by columns and hold on every row (no quarantine)."""

from __future__ import annotations

import datetime as dt

import duckdb

from quality_checks.fixtures import create_mart_examples
from quality_checks.marts import discover_mart_specs
from quality_checks.rules import QualityConfig
from quality_checks.validate import validate_tables

CFG = QualityConfig(as_of=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))


def _specs(tmp_path):
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    try:
        create_mart_examples(con)
        return path, discover_mart_specs(con)
    finally:
        con.close()


def test_discovery_finds_only_tables_with_known_invariants(tmp_path):
    _, specs = _specs(tmp_path)
    assert [s.label for s in specs] == ["attribution.touch_credits", "marts.pipeline_waterfall"]
    assert all(not s.quarantine and all(r.hard for r in s.rules) for s in specs)


def test_waterfall_and_credit_invariants(tmp_path):
    path, specs = _specs(tmp_path)
    res = {r.label: r for r in validate_tables(path, specs, CFG, run_id="m1", engine="sql")}
    wf = res["marts.pipeline_waterfall"]
    # row 1: 100+10+0+5-1-20-4-0 = 90 balances; row 2 is off by one cent
    assert wf.errors == [] and wf.counts.failed_rows == 1 and not wf.passed
    assert "off by -0.01" in wf.samples[0]["reason"]
    cr = res["attribution.touch_credits"]
    assert cr.errors == [] and cr.counts.failed_rows == 2  # both j2/markov rows (sum 0.9)
    assert {s["record_id"].split("/")[0] for s in cr.samples} == {"j2"}
    assert cr.counts.quarantined_rows == 0 and cr.counts.hard_failed_downstream == 2
