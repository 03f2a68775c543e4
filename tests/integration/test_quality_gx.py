"""Great Expectations over DuckDB: reads the right table, returns no errors, releases the file.

The fixture plants two tables named `opportunity`: `salesforce.opportunity` (the one to validate)
and `main.opportunity` (a decoy with other rows and other defects). GX's table path on
SQLAlchemy 2.1 can silently read the unqualified name; these tests fail if it ever does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
import sys

import duckdb
import pytest

from quality_checks import gx_engine
from quality_checks.fixtures import create_mart_examples, create_raw_tables
from quality_checks.marts import discover_mart_specs
from quality_checks.rules import QualityConfig, spec_for
from quality_checks.validate import validate_table, validate_tables

AS_OF = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
# Planted in salesforce.opportunity (100 live rows + 5 deleted rows that are all bad):
PLANTED = {
    "opportunity.type.in_set": {"O8", "O18"},
    "opportunity.amount.non_negative": {"O4"},
    "opportunity.account_id.not_null": {"O1"},
    "opportunity.account_id.references_account": {"O2", "O3"},  # A999 missing, A9 deleted
    "opportunity.id.unique": {"O10"},  # two live rows share O10
    "opportunity.is_won_implies_is_closed": {"O7"},
    "opportunity.close_date_after_created": {"O30"},
}


def _build(path) -> None:
    con = duckdb.connect(str(path))
    try:
        create_raw_tables(con, ["User", "Account", "Opportunity"])
        audit = "TIMESTAMPTZ '2025-01-01', TIMESTAMPTZ '2025-01-01', TIMESTAMPTZ '2025-12-31'"
        con.execute(
            "INSERT INTO salesforce.user (id, username, name, last_name, email, is_active, "
            f"created_date, last_modified_date, system_modstamp) SELECT 'U' || i, 'u' || i, 'n', "
            f"'l', 'e@x.com', true, {audit} FROM range(5) t(i)"
        )
        con.execute(
            "INSERT INTO salesforce.account (id, name, industry, owner_id, currency_iso_code, "
            "created_date, last_modified_date, system_modstamp, is_deleted) SELECT 'A' || i, "
            f"'acc', 'Software', 'U1', 'USD', {audit}, i = 9 FROM range(10) t(i)"
        )
        con.execute(
            f"""INSERT INTO salesforce.opportunity (id, name, account_id, owner_id, stage_name,
                amount, currency_iso_code, close_date, is_closed, is_won, type, created_date,
                last_modified_date, system_modstamp, is_deleted)
            SELECT 'O' || i, 'opp',
                CASE WHEN i = 1 THEN NULL WHEN i = 2 THEN 'A999' WHEN i = 3 THEN 'A9'
                     ELSE 'A' || (i % 9) END,
                'U1', 'Prospecting', CASE WHEN i = 4 THEN -5 ELSE 100 END, 'USD',
                CASE WHEN i = 30 THEN DATE '2024-06-01' ELSE DATE '2025-06-01' END,
                i IN (5, 6), i IN (5, 7), CASE WHEN i IN (8, 18) THEN 'Bogus' ELSE 'Renewal' END,
                {audit}, false
            FROM range(100) t(i)"""
        )
        # a second live O10, and deleted rows carrying every kind of defect (must not count)
        con.execute(
            "INSERT INTO salesforce.opportunity (id, name, account_id, owner_id, stage_name, "
            "amount, currency_iso_code, close_date, is_closed, is_won, created_date, "
            f"last_modified_date, system_modstamp, is_deleted) VALUES ('O10', 'dup', 'A1', 'U1', "
            f"'Prospecting', 1, 'USD', DATE '2025-06-01', false, false, {audit}, NULL)"
        )
        con.execute(
            "INSERT INTO salesforce.opportunity (id, name, account_id, owner_id, stage_name, "
            "amount, currency_iso_code, close_date, is_closed, is_won, type, created_date, "
            "last_modified_date, system_modstamp, is_deleted) SELECT 'D' || i, NULL, 'A999', "
            f"'U77', 'Nope', -1, 'XXX', DATE '2024-01-01', false, true, 'Bogus', {audit}, true "
            "FROM range(5) t(i)"
        )
        # the decoy: same table name in the default schema, different rows and defects
        con.execute(
            "CREATE TABLE main.opportunity AS SELECT * REPLACE ('M' || id AS id, "
            "'Bogus' AS type, -1.0 AS amount) FROM salesforce.opportunity WHERE id <> 'O10'"
        )
    finally:
        con.close()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    path = tmp_path_factory.mktemp("dq_gx") / "warehouse.duckdb"
    _build(path)
    return path


def test_gx_reads_the_schema_qualified_table_without_errors(warehouse):
    cfg = QualityConfig(as_of=AS_OF)
    spec = spec_for("Opportunity", cfg)
    r = validate_table(warehouse, spec, cfg, run_id="gx-1", engine="gx")
    assert r.errors == []
    by = {x.name: x for x in r.rules}
    assert all(x.engine == "gx" for x in r.rules)
    assert r.counts.rows == 101  # 100 + the second O10; the 5 deleted rows do not count
    for name, ids in PLANTED.items():
        expected = len(ids) + (1 if name == "opportunity.id.unique" else 0)  # both O10 rows
        assert by[name].failed == expected, name
    assert by["opportunity.type.in_set"].checked == 100  # non-null types (the 2nd O10 has none)
    failing = {s["record_id"] for s in r.samples}
    assert failing == set().union(*PLANTED.values())
    assert not any(s.startswith("M") or s.startswith("D") for s in failing)
    # row-level: 9 distinct ids fail, the duplicate O10 counts twice (two rows)
    assert r.counts.failed_rows == 10
    assert r.score == pytest.approx(91 / 101)


def test_gx_engine_alone_counts_the_salesforce_rows(warehouse):
    """No SQL cross-check here: GX's own numbers must be those of salesforce.opportunity."""
    cfg = QualityConfig(as_of=AS_OF)
    spec = spec_for("Opportunity", cfg).with_rules(
        [r for r in spec_for("Opportunity", cfg).rules if r.name in PLANTED]
        + [r for r in spec_for("Opportunity", cfg).rules if r.name.endswith("name.not_null")]
    )
    res, stats = gx_engine.run_suite(warehouse, spec, rows=101)
    assert all(g.error is None for g in res.values()), res
    assert res["opportunity.amount.non_negative"].failed == 1  # the decoy has 99 negatives
    assert res["opportunity.type.in_set"].failed == 2  # the decoy has 99 'Bogus'
    assert res["opportunity.name.not_null"].checked == 101  # decoy: 99 rows, deleted: 5 more
    assert res["opportunity.name.not_null"].failed == 0  # deleted rows have NULL names
    assert stats["evaluated_expectations"] == len(spec.rules)


def _tamper(monkeypatch, name: str, **changes):
    """Make GX report other numbers for one rule, as if it had read another table."""
    real = gx_engine.run_suite

    def tampered(path, spec, rows=None, run_name="x", query=None, session=None):
        res, stats = real(path, spec, rows, run_name, query, session)
        res[name] = dataclasses.replace(res[name], **changes)
        return res, stats

    monkeypatch.setattr(gx_engine, "run_suite", tampered)


@pytest.mark.parametrize(
    ("rule", "changes", "recheck"),
    [
        ("opportunity.amount.non_negative", {"failed": 3, "success": False}, False),
        ("opportunity.type.in_set", {"checked": 99}, False),  # checked counts always compared
        ("opportunity.id.unique", {"checked": 100}, False),
        # GX calling a failing rule clean is caught when clean rules are re-checked in SQL
        ("opportunity.amount.non_negative", {"failed": 0, "success": True}, True),
    ],
)
def test_disagreement_between_gx_and_sql_fails_the_gate(
    warehouse, monkeypatch, rule, changes, recheck
):
    _tamper(monkeypatch, rule, **changes)
    cfg = QualityConfig(as_of=AS_OF, recheck_clean_rules=recheck)
    r = validate_table(warehouse, spec_for("Opportunity", cfg), cfg, engine="gx", write=False)
    assert any("disagree" in e and rule in e for e in r.errors), r.errors
    assert not r.passed and r.severity == "ERROR"


def test_clean_rules_are_not_recomputed_but_results_are_identical(warehouse):
    base = QualityConfig(as_of=AS_OF)
    full = QualityConfig(as_of=AS_OF, recheck_clean_rules=True)
    a = validate_table(warehouse, spec_for("Opportunity", base), base, engine="gx", write=False)
    b = validate_table(warehouse, spec_for("Opportunity", full), full, engine="gx", write=False)
    assert a.errors == b.errors == []
    assert [(x.name, x.checked, x.failed) for x in a.rules] == [
        (x.name, x.checked, x.failed) for x in b.rules
    ]
    assert a.counts == b.counts and a.samples == b.samples


def test_gx_metric_errors_are_reported_not_swallowed():
    class Res:
        success = False
        result: dict = {}
        exception_info = {"raised_exception": True, "exception_message": "boom"}

    rule = spec_for("Opportunity", QualityConfig(as_of=AS_OF)).rules[0]
    got = gx_engine._read_result(rule, Res(), rows=10)
    assert got.error == "boom"

    class Empty(Res):
        exception_info = {}
        result = {}

    assert "no counts" in gx_engine._read_result(rule, Empty(), rows=10).error


def test_file_is_released_after_validation(warehouse):
    cfg = QualityConfig(as_of=AS_OF)
    validate_table(warehouse, spec_for("Account", cfg), cfg, run_id="gx-lock", engine="gx")
    code = (
        "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
        "c.execute('CREATE OR REPLACE TABLE main.lock_probe AS SELECT 1 AS a'); c.close()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(warehouse)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


def test_native_gx_unique_expectation_gives_the_same_counts(warehouse, monkeypatch):
    monkeypatch.setattr(gx_engine, "NATIVE_UNIQUE", True)
    cfg = QualityConfig(as_of=AS_OF)
    spec = spec_for("Opportunity", cfg)
    spec = spec.with_rules([r for r in spec.rules if r.name == "opportunity.id.unique"])
    res, _ = gx_engine.run_suite(warehouse, spec, rows=101)
    g = res["opportunity.id.unique"]
    assert g.error is None and g.failed == 2 and g.checked == 101


def test_mart_invariants_through_gx(tmp_path):
    path = tmp_path / "mart_examples.duckdb"
    con = duckdb.connect(str(path))
    create_mart_examples(con)
    specs = discover_mart_specs(con)
    con.close()
    res = {r.label: r for r in validate_tables(path, specs, QualityConfig(as_of=AS_OF))}
    wf, cr = res["marts.pipeline_waterfall"], res["attribution.touch_credits"]
    assert wf.errors == [] and cr.errors == []
    assert all(r.engine == "gx" for r in wf.rules + cr.rules)
    assert (wf.counts.failed_rows, cr.counts.failed_rows) == (1, 2)
    assert not wf.passed and not cr.passed


def test_expectations_compute_their_configuration_once_and_again_after_a_change():
    """Our GX expectations cache `configuration` (GX rebuilds it for every kwarg it reads); the
    cache equals GX's own and is dropped when a field changes."""
    spec = spec_for("Opportunity", QualityConfig(as_of=AS_OF))
    rule = next(r for r in spec.rules if r.name == "opportunity.type.in_set")
    e = gx_engine.expectation_for(rule, spec)
    first = e.configuration
    assert e.configuration is first
    assert first.kwargs["column"] == rule.column and first.meta["rule"] == rule.name
    stock = gx_engine._gx().expectations.ExpectColumnValuesToBeInSet(
        column=rule.column, value_set=rule.gx_args["value_set"], meta=first.meta
    )
    assert stock.configuration.kwargs == first.kwargs
    e.column = "other_column"
    assert e.configuration is not first and e.configuration.kwargs["column"] == "other_column"
