"""Scoped relationships and key tests on incremental runs find exactly what whole tables find.

One tiny org: a whole `dbt build` (the green baseline: staging orphans warn, their failing keys
are kept), then a week advanced the way dlt merges it plus planted orphans in what changed: a
new history row whose opportunity never existed, an opportunity deleted (its unchanged children
become orphans), one quarantined without any raw change. The incremental `dbt build` runs the
scoped tests (macros/staging_tests.sql, macros/incremental_tests.sql) and stays green (the
orphans warn); then a new row repeating an old history id, a scoped `dbt test` (fails), and the
`dbt test` after that failure, which reads whole tables: every test must give the same status
and failure count both ways, and the orphan count must equal one computed here from the raw
tables.
"""

from __future__ import annotations

import json
from datetime import date

import duckdb
import pytest

from assets.dbt.incremental_check import load_warehouse, merge_like_dlt, run_dbt
from sandbox.org import advance, generate

pytestmark = pytest.mark.slow

TINY = {
    "reps": 12,
    "accounts": 150,
    "opportunities": 300,
    "leads": 600,
    "contacts": 400,
    "activities": 2000,
}
LOAD_ID = "9999999999.000001"
DUPLICATE_LOAD_ID = "9999999999.000002"
BUILD = ["build", "--exclude-resource-type", "unit_test"]
HISTORY_ORPHANS = "test.salesops.relationships_stg_salesforce__opportunity_history_opportunity_id"
HISTORY_UNIQUE = "test.salesops.unique_stg_salesforce__opportunity_history_opportunity_history_id"
JOURNEY_PARENTS = "test.salesops.relationships_int_opportunity_journeys_opportunity_id"
MISSING_PARENT = "006-never-existed"
RAW_SCOPE = "_dlt_load_id >"
CARRIED = "intermediate.incremental_tests_failures"


def _sql(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list:
    return con.execute(sql, params or []).fetchall()


def _results(target) -> dict[str, dict]:
    return {
        r["unique_id"]: r
        for r in json.loads((target / "run_results.json").read_text())["results"]
        if r["unique_id"].startswith("test.")
    }


def _one(results: dict, prefix: str) -> dict:
    (match,) = [r for uid, r in results.items() if uid.startswith(prefix)]
    return match


def _history_orphans(con) -> int:
    """History rows of the staging view whose opportunity is not in the opportunities view,
    from the raw tables and the quarantine (the views' rules, written out here)."""
    return _sql(
        con,
        """
        with quarantined as (
            select replace(lower(object), '_', '') as object, record_id
            from quality.quarantine_ids
        ),
        opportunities as (
            select id from salesforce.opportunity
            where not coalesce(is_deleted, false)
              and id not in (select record_id from quarantined where object = 'opportunity')
        )
        select count(*) from salesforce.opportunity_history
        where not coalesce(is_deleted, false)
          and id not in (select record_id from quarantined where object = 'opportunityhistory')
          and opportunity_id is not null
          and opportunity_id not in (select id from opportunities)
        """,
    )[0][0]


def _plant(con) -> dict[str, str]:
    """Violations in the rows this week changed (each with the new load id, as dlt merges)."""
    deleted, quarantined = [
        r[0]
        for r in _sql(
            con,
            "select o.id from salesforce.opportunity as o "
            "where not o.is_deleted and o._dlt_load_id < ? "
            "and o.id not in (select record_id from quality.quarantine_ids) "
            "and o.id in (select opportunity_id from salesforce.opportunity_history "
            "where not is_deleted and _dlt_load_id < ?) order by o.id limit 2",
            [LOAD_ID, LOAD_ID],
        )
    ]
    _sql(
        con,
        "update salesforce.opportunity set is_deleted = true, _dlt_load_id = ? where id = ?",
        [LOAD_ID, deleted],
    )
    _sql(
        con,
        "insert into quality.quarantine_ids values ('Opportunity', ?, 'test', 'planted', now())",
        [quarantined],
    )
    old = _sql(
        con,
        "select min(id) from salesforce.opportunity_history where not is_deleted "
        "and _dlt_load_id < ? and opportunity_id not in (?, ?)",
        [LOAD_ID, deleted, quarantined],
    )[0][0]
    _sql(
        con,
        "insert into salesforce.opportunity_history select * replace "
        "('new-orphan' as id, ? as opportunity_id, ? as _dlt_load_id, 'new-orphan' as _dlt_id) "
        "from salesforce.opportunity_history where id = ?",
        [MISSING_PARENT, LOAD_ID, old],
    )
    return {"deleted": deleted, "quarantined": quarantined, "old": old}


def _plant_duplicate(con, history_id: str) -> None:
    """A new row (new load id) repeating an old history id."""
    _sql(
        con,
        "insert into salesforce.opportunity_history select * replace "
        "(? as _dlt_load_id, 'dup' as _dlt_id) from salesforce.opportunity_history where id = ?",
        [DUPLICATE_LOAD_ID, history_id],
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    home = tmp_path_factory.mktemp("dbt_scoped_tests")
    warehouse, target = home / "warehouse.duckdb", home / "target"
    org = generate(TINY, seed=31, end=date(2026, 6, 1))
    load_warehouse(org, warehouse)
    con = duckdb.connect(str(warehouse))
    try:
        _sql(con, "create schema quality")
        _sql(
            con,
            "create table quality.quarantine_ids (object varchar, record_id varchar, "
            "rule varchar, reason varchar, detected_at timestamp)",
        )
        # an orphaned history at the baseline: its warning must be carried, not lost
        baseline_parent = _sql(
            con,
            "select min(opportunity_id) from salesforce.opportunity_history where not is_deleted",
        )[0][0]
        _sql(
            con,
            "insert into quality.quarantine_ids values "
            "('Opportunity', ?, 'test-before', 'planted', now())",
            [baseline_parent],
        )
    finally:
        con.close()
    green = run_dbt(BUILD, home, target, check=False)
    con = duckdb.connect(str(warehouse))
    try:
        green_orphans = _history_orphans(con)
        carried = _sql(con, f"select count(*) from {CARRIED}")[0][0]
        merge_like_dlt(org, advance(org, 7), warehouse, load_id=LOAD_ID)
        planted = _plant(con)
        orphans = _history_orphans(con)
    finally:
        con.close()
    scoped = run_dbt(BUILD, home, target, check=False)
    scoped_results = _results(target)
    con = duckdb.connect(str(warehouse))
    try:
        audit = _one(scoped_results, HISTORY_ORPHANS)["relation_name"]
        failing_parents = {r[0] for r in _sql(con, f"select from_field from {audit}")}
        _plant_duplicate(con, planted["old"])
        final_orphans = _history_orphans(con)
    finally:
        con.close()
    scoped_test = run_dbt(["test"], home, target, check=False)
    scoped_test_results = _results(target)
    whole = run_dbt(["test"], home, target, check=False)
    return {
        "green": green,
        "green_orphans": green_orphans,
        "carried": carried,
        "baseline_parent": baseline_parent,
        "planted": planted,
        "orphans": orphans,
        "scoped": scoped,
        "scoped_results": scoped_results,
        "failing_parents": failing_parents,
        "final_orphans": final_orphans,
        "scoped_test": scoped_test,
        "scoped_test_results": scoped_test_results,
        "whole": whole,
        "whole_results": _results(target),
    }


def test_the_baseline_is_green_and_keeps_its_warnings(runs):
    assert runs["green"]["returncode"] == 0
    assert set(runs["green"]["status"].values()) <= {"pass", "success", "warn"}
    # the orphans of the quarantined deal warned, and their keys were kept for the next run
    assert runs["green_orphans"] > 0
    assert runs["carried"] >= runs["green_orphans"]


def test_relationships_and_keys_read_only_what_changed(runs):
    scoped = runs["scoped_results"]
    history = _one(scoped, HISTORY_ORPHANS)["compiled_code"]
    assert RAW_SCOPE in history and CARRIED in history
    # the parent side reads only the keys the scoped children reference
    assert "where opportunity_id in (select child.from_field from child)" in history
    assert RAW_SCOPE in _one(scoped, HISTORY_UNIQUE)["compiled_code"]
    journeys = _one(scoped, JOURNEY_PARENTS)["compiled_code"]
    assert "'marts.opportunities'" in journeys and "intermediate.incremental_changed" in journeys
    relationships = [uid for uid in scoped if uid.startswith("test.salesops.relationships_")]
    assert len(relationships) >= 12
    assert all(
        RAW_SCOPE in scoped[uid]["compiled_code"]
        or "intermediate.incremental_changed" in scoped[uid]["compiled_code"]
        for uid in relationships
    )


def test_planted_violations_fail_the_scoped_tests(runs):
    planted, scoped = runs["planted"], runs["scoped_results"]
    # orphans warn (staging's orphan keys are configured to warn): the build stays green
    assert runs["scoped"]["returncode"] == 0
    orphans = _one(scoped, HISTORY_ORPHANS)
    assert orphans["status"] == "warn"
    # new child, deleted parent, parent quarantined without a raw change, and the baseline's
    # orphans (unchanged rows, carried from the green run)
    assert {
        MISSING_PARENT,
        planted["deleted"],
        planted["quarantined"],
        runs["baseline_parent"],
    } <= runs["failing_parents"]
    assert orphans["failures"] == runs["orphans"] > runs["green_orphans"]
    # an old id repeated by a new row fails the scoped key test
    assert runs["scoped_test"]["returncode"] != 0
    unique = _one(runs["scoped_test_results"], HISTORY_UNIQUE)
    assert RAW_SCOPE in unique["compiled_code"]
    assert (unique["status"], unique["failures"]) == ("fail", 1)


def test_scoped_results_equal_whole_tables(runs):
    whole = runs["whole_results"]
    # the run after a failed one reads whole tables
    assert not any(
        RAW_SCOPE in r["compiled_code"] or "intermediate.incremental_changed" in r["compiled_code"]
        for r in whole.values()
    )
    scoped = runs["scoped_test_results"]
    assert sum(RAW_SCOPE in r["compiled_code"] for r in scoped.values()) > 40
    assert set(scoped) == set(whole) and len(whole) > 100
    for uid, result in whole.items():
        assert (scoped[uid]["status"], scoped[uid]["failures"]) == (
            result["status"],
            result["failures"],
        ), uid
    assert _one(whole, HISTORY_ORPHANS)["failures"] == runs["final_orphans"]
