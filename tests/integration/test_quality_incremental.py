"""Incremental evaluation gives exactly the results of a from-scratch evaluation.

An org is generated and evaluated (full, state kept), advanced by a week, and the changes are
loaded the way dlt's merge on Id does (changed and new rows replace the old ones and carry a new
`_dlt_load_id`). The incremental evaluation of that warehouse is compared with a full evaluation
of a copy of the same data: every table's score, dimension scores, per-rule counts, failing rows,
samples and quarantine must be identical. Defects planted in the new week's rows, and an
unchanged child orphaned by a deleted parent, must be found.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from quality_checks import incremental
from quality_checks.fixtures import merge_org_like_dlt
from quality_checks.rules import QualityConfig, salesforce_specs, spec_for
from quality_checks.validate import validate_table, validate_tables
from sandbox.org import advance, generate, load_into_duckdb

END = dt.date(2026, 6, 30)
GX_TABLES = ("Opportunity", "Lead", "OpportunityHistory")


def _set(tbl: pa.Table, ids: list[str], column: str, value) -> pa.Table:
    mask = pc.is_in(tbl["Id"], value_set=pa.array(ids))
    i = tbl.schema.get_field_index(column)
    new = pc.if_else(mask, pa.scalar(value, tbl.schema.field(i).type), tbl[column])
    return tbl.set_column(i, column, new)


def _bump(tbl: pa.Table, ids: list[str], at: dt.datetime) -> pa.Table:
    return _set(_set(tbl, ids, "SystemModstamp", at), ids, "LastModifiedDate", at)


@pytest.fixture(scope="module")
def week(tmp_path_factory):
    """(incremental warehouse, full-copy warehouse, planted facts, as_of of week 2)."""
    d = tmp_path_factory.mktemp("dq_incr")
    org = generate("small", seed=23, end=END)
    inc = d / "incremental.duckdb"
    load_into_duckdb(org, inc)
    cfg1 = QualityConfig(as_of=org.as_of)
    first = validate_tables(inc, salesforce_specs(cfg1), cfg1, run_id="week-1", engine="sql")
    assert all(r.evaluation.startswith("full") for r in first)

    org2 = advance(org, 7)
    t = dict(org2.tables)
    at = org2.as_of - dt.timedelta(hours=1)
    defect_ids = {i for dd in org.truth["defects"] for i in dd["ids"]}
    # an open opportunity with stage history, deleted this week: its unchanged history rows
    # become orphans (a changed parent breaks unchanged children)
    opp, hist = t["Opportunity"], t["OpportunityHistory"]
    with_history = set(hist["OpportunityId"].to_pylist())
    live_open = [
        i
        for i, deleted, closed in zip(
            opp["Id"].to_pylist(),
            opp["IsDeleted"].to_pylist(),
            opp["IsClosed"].to_pylist(),
            strict=True,
        )
        if not deleted and not closed and i in with_history and i not in defect_ids
    ]
    victim = live_open[0]
    opp = _bump(_set(opp, [victim], "IsDeleted", True), [victim], at)
    # defects planted in this week's changes: a negative amount on a changed opportunity, an
    # invalid lead status on a new lead, an orphan owner on a new task
    new_opps = sorted(set(opp["Id"].to_pylist()) - set(org.tables["Opportunity"]["Id"].to_pylist()))
    neg = new_opps[:2]
    opp = _bump(_set(opp, neg, "Amount", -50.0), neg, at)
    new_leads = sorted(set(t["Lead"]["Id"].to_pylist()) - set(org.tables["Lead"]["Id"].to_pylist()))
    bad_lead = new_leads[:3]
    lead = _bump(_set(t["Lead"], bad_lead, "Status", "Bogus Status"), bad_lead, at)
    new_tasks = sorted(set(t["Task"]["Id"].to_pylist()) - set(org.tables["Task"]["Id"].to_pylist()))
    orphan_task = new_tasks[:1]
    task = _bump(_set(t["Task"], orphan_task, "OwnerId", "005999999999999"), orphan_task, at)
    t.update({"Opportunity": opp, "Lead": lead, "Task": task})

    con = duckdb.connect(str(inc))
    written = merge_org_like_dlt(con, t, load_id="load-week-2")
    con.close()
    full = d / "full.duckdb"
    shutil.copy(inc, full)
    # the same week-1 state, evaluated table by table without the run's shared cache
    shutil.copy(inc, d / "per_table.duckdb")
    # and once more, for one GX run over every table
    shutil.copy(inc, d / "gx_run.duckdb")
    orphaned = [
        i
        for i, o in zip(hist["Id"].to_pylist(), hist["OpportunityId"].to_pylist(), strict=True)
        if o == victim
    ]
    planted = {
        "victim": victim,
        "orphaned_history": set(orphaned),
        "negative_amount": set(neg),
        "bad_status": set(bad_lead),
        "orphan_task": set(orphan_task),
        "written": written,
        "per_table": d / "per_table.duckdb",
        "gx_run": d / "gx_run.duckdb",
    }
    assert len(neg) == 2 and len(bad_lead) == 3 and orphaned
    return inc, full, planted, org2.as_of


def _failing(path, table: str) -> set[tuple[str, str]]:
    con = duckdb.connect(str(path))
    try:
        return set(
            con.execute(
                'SELECT record_id, rule FROM quality.row_failures WHERE "table" = ?', [table]
            ).fetchall()
        )
    finally:
        con.close()


def _quarantine(path) -> set[tuple]:
    con = duckdb.connect(str(path))
    try:
        return set(
            con.execute(
                "SELECT object, record_id, rule, reason FROM quality.quarantine_ids"
            ).fetchall()
        )
    finally:
        con.close()


def _same(a, b) -> None:
    assert a.label == b.label
    assert a.counts == b.counts, a.label
    assert a.score == b.score and a.dimension_scores == b.dimension_scores, a.label
    assert [(r.name, r.checked, r.failed) for r in a.rules] == [
        (r.name, r.checked, r.failed) for r in b.rules
    ], a.label
    assert a.samples == b.samples, a.label
    assert (a.passed, a.severity, a.findings, a.errors) == (b.passed, b.severity, b.findings, [])


@pytest.fixture(scope="module")
def compared(week):
    inc, full, planted, as_of = week
    cfg = QualityConfig(as_of=as_of)
    scratch = QualityConfig(as_of=as_of, incremental=False)
    specs = salesforce_specs(cfg)
    a = validate_tables(inc, specs, cfg, run_id="week-2", engine="sql")
    b = validate_tables(full, salesforce_specs(scratch), scratch, run_id="week-2", engine="sql")
    return {r.object: r for r in a}, {r.object: r for r in b}


def test_incremental_sql_equals_a_full_evaluation(week, compared):
    inc, full, planted, _ = week
    a, b = compared
    assert set(a) == set(b) and len(a) == 17
    for obj in a:
        _same(a[obj], b[obj])
        assert _failing(inc, a[obj].label) == _failing(full, b[obj].label), obj
        assert a[obj].evaluation.startswith("incremental"), (obj, a[obj].evaluation)
        assert b[obj].evaluation.startswith("full"), obj
    assert _quarantine(inc) == _quarantine(full)


def test_run_cache_and_shared_connection_change_no_result(week, compared, monkeypatch):
    """validate_tables shares one connection, the catalog and the parents' load counts across
    the run; each table validated on its own (own connection, fresh catalog) gives the same."""
    from quality_checks import store

    _, _, planted, as_of = week
    a, _ = compared
    cfg = QualityConfig(as_of=as_of)
    path = planted["per_table"]
    opened = []
    real = store.connect

    def counting(*args, **kwargs):
        opened.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "connect", counting)
    blocked = False
    for spec in salesforce_specs(cfg):
        r = validate_table(path, spec, cfg, run_id="week-2", engine="sql")
        assert r.evaluation.startswith("incremental"), (spec.object, r.evaluation)
        _same(r, a[spec.object])
        # whether any table of the run so far is below the gate (read in the same transaction)
        blocked = blocked or r.severity == "ERROR"
        assert r.run_blocked is blocked, spec.object
        assert _failing(path, r.label) == _failing(week[0], r.label), spec.object
    assert len(opened) == 17  # one connection per table without the run cache
    opened.clear()
    again = path.parent / "per_table_again.duckdb"
    shutil.copy(path, again)
    validate_tables(again, salesforce_specs(cfg), cfg, run_id="week-2c", engine="sql")
    assert opened == [again]  # one connection for the whole run


def test_one_gx_session_for_the_run_equals_a_full_evaluation(week, compared, monkeypatch):
    """The GX engine over every table in one run: one connection, one GX session reading
    through it (it must see each table's candidate rows, written after the session opened),
    GX only for tables with candidate rows; every result equals the full SQL evaluation."""
    from quality_checks import gx_engine, store

    _, full, _, as_of = week
    _, b = compared
    sessions, suites, opened = [], [], []
    real_session, real_suite, real_connect = gx_engine.Session, gx_engine.run_suite, store.connect

    def session(*args, **kwargs):
        sessions.append(args)
        return real_session(*args, **kwargs)

    def suite(path, spec, *args, **kwargs):
        suites.append(spec.label)
        return real_suite(path, spec, *args, **kwargs)

    def connect(*args, **kwargs):
        opened.append(args[0])
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(gx_engine, "Session", session)
    monkeypatch.setattr(gx_engine, "run_suite", suite)
    monkeypatch.setattr(store, "connect", connect)
    path = week[2]["gx_run"]
    cfg = QualityConfig(as_of=as_of)
    a = {r.object: r for r in validate_tables(path, salesforce_specs(cfg), cfg, "gx-run")}
    assert set(a) == set(b)
    assert len(sessions) == 1 and opened == [path]
    with_candidates = {r.label for r in a.values() if _candidates(r.evaluation)}
    assert "salesforce.opportunity_history" in with_candidates
    assert "salesforce.user" not in with_candidates  # nothing changed: no GX at all
    assert sorted(suites) == sorted(with_candidates)
    for obj, r in a.items():
        assert r.evaluation.startswith("incremental"), (obj, r.evaluation)
        assert r.errors == [], (obj, r.errors)
        _same(r, b[obj])
        assert _failing(path, r.label) == _failing(full, b[obj].label), obj
        if r.label in with_candidates:
            assert all(x.engine == "gx" for x in r.rules), obj
    assert _quarantine(path) == _quarantine(full)


def _candidates(evaluation: str) -> int:
    return int(evaluation.split(" candidate rows")[0].rsplit(" ", 1)[1].replace(",", ""))


def test_cost_follows_the_changed_rows(week, compared):
    inc, _, planted, _ = week
    a, _ = compared
    total_rows = sum(r.counts.rows for r in a.values())
    total_candidates = sum(_candidates(r.evaluation) for r in a.values())
    assert total_candidates < 0.05 * total_rows, (total_candidates, total_rows)
    # a table nobody touched, whose parents did not change either, validates no row
    for obj in ("User", "UserRole", "Product2", "CurrencyType", "ForecastingQuota"):
        assert planted["written"][obj] == 0
        assert _candidates(a[obj].evaluation) == 0, a[obj].evaluation
    # the big child table: its new rows plus the rows that fail (before or now), nothing else
    hist = a["OpportunityHistory"]
    assert "children of changed parents" in hist.evaluation  # its parent Opportunity changed
    con = duckdb.connect(str(inc))
    try:
        children = con.execute(
            "SELECT count(*) FROM salesforce.opportunity_history WHERE opportunity_id IN "
            "(SELECT id FROM salesforce.opportunity WHERE _dlt_load_id = 'load-week-2')"
        ).fetchall()[0][0]
    finally:
        con.close()
    assert _candidates(hist.evaluation) <= (
        planted["written"]["OpportunityHistory"] + children + 2 * hist.counts.failed_rows
    )
    assert _candidates(hist.evaluation) < 0.05 * hist.counts.rows


def test_planted_defects_of_the_new_week_are_found(week, compared):
    inc, _, planted, _ = week
    a, _ = compared
    opp = _failing(inc, "salesforce.opportunity")
    assert {(i, "opportunity.amount.non_negative") for i in planted["negative_amount"]} <= opp
    lead = _failing(inc, "salesforce.lead")
    assert {(i, "lead.status.in_set") for i in planted["bad_status"]} <= lead
    task = _failing(inc, "salesforce.task")
    assert {(i, "task.owner_id.references_user") for i in planted["orphan_task"]} <= task
    # unchanged history rows of the deleted opportunity: orphans, quarantined
    q = _quarantine(inc)
    orphaned = {
        rid
        for obj, rid, rule, _ in q
        if obj == "OpportunityHistory"
        and rule == "opportunity_history.opportunity_id.references_opportunity"
    }
    assert planted["orphaned_history"] <= orphaned
    con = duckdb.connect(str(inc))
    try:
        loads = {
            r[0]
            for r in con.execute(
                "SELECT DISTINCT _dlt_load_id FROM salesforce.opportunity_history WHERE id IN "
                "(SELECT unnest(?))",
                [sorted(planted["orphaned_history"])],
            ).fetchall()
        }
    finally:
        con.close()
    assert "load-week-2" not in loads  # the children themselves did not change
    assert a["OpportunityHistory"].counts.quarantined_rows >= len(planted["orphaned_history"])


def test_nothing_changed_validates_no_row_and_keeps_results(week, compared):
    inc, _, _, as_of = week
    a, _ = compared
    d = inc.parent / "again.duckdb"
    shutil.copy(inc, d)
    cfg = QualityConfig(as_of=as_of + dt.timedelta(hours=2))
    for obj in ("Task", "Opportunity", "Account"):
        r = validate_table(d, spec_for(obj, cfg), cfg, run_id="week-2b", engine="sql")
        assert r.evaluation.startswith("incremental: 0 new load(s)"), r.evaluation
        _same(r, a[obj])


def test_incremental_gx_equals_full(week, compared):
    inc, _, _, as_of = week
    _, b = compared
    d = inc.parent / "gx.duckdb"
    shutil.copy(inc, d)
    # roll the state back to week 1 for these tables: copy again from a week-1 evaluation
    con = duckdb.connect(str(d))
    con.execute("DELETE FROM quality.eval_state")  # state gone -> full; then incremental
    con.close()
    cfg = QualityConfig(as_of=as_of)
    for obj in GX_TABLES:
        r0 = validate_table(d, spec_for(obj, cfg), cfg, run_id="gx-0", engine="gx")
        assert r0.evaluation.startswith("full (no state"), r0.evaluation
        _same(r0, b[obj])
    # one more week of changes, loaded like dlt, then GX incremental vs SQL full
    con = duckdb.connect(str(d))
    for table, col in (("opportunity", "amount"), ("lead", "status")):
        value = "-1.0" if col == "amount" else "'Bogus Status'"
        con.execute(
            f"CREATE TEMP TABLE ch AS SELECT * REPLACE ({value} AS {col}, 'load-week-3' AS "
            f"_dlt_load_id) FROM salesforce.{table} WHERE NOT is_deleted ORDER BY id LIMIT 4"
        )
        con.execute(f"DELETE FROM salesforce.{table} WHERE id IN (SELECT id FROM ch)")
        con.execute(f"INSERT INTO salesforce.{table} SELECT * FROM ch")
        con.execute("DROP TABLE ch")
    con.close()
    scratch = d.parent / "gx_full.duckdb"
    shutil.copy(d, scratch)
    full_cfg = QualityConfig(as_of=as_of, incremental=False)
    for obj in GX_TABLES:
        r = validate_table(d, spec_for(obj, cfg), cfg, run_id="gx-1", engine="gx")
        f = validate_table(scratch, spec_for(obj, full_cfg), full_cfg, run_id="gx-1", engine="sql")
        assert r.evaluation.startswith("incremental"), r.evaluation
        assert r.errors == [] and all(x.engine == "gx" for x in r.rules), r.errors
        _same(r, f)
        assert _failing(d, r.label) == _failing(scratch, f.label)
    assert _quarantine(d) == _quarantine(scratch)


def test_falls_back_to_full_when_state_cannot_be_trusted(week):
    inc, _, _, as_of = week
    d = inc.parent / "fallback.duckdb"
    shutil.copy(inc, d)
    cfg = QualityConfig(as_of=as_of)
    spec = spec_for("Opportunity", cfg)
    con = duckdb.connect(str(d))
    try:
        cols = {r[0] for r in con.execute("DESCRIBE salesforce.opportunity").fetchall()}
        assert incremental.plan(con, spec, cols, as_of).incremental
        back = incremental.plan(con, spec, cols, as_of - dt.timedelta(days=1))
        assert not back.incremental and "as_of moved back" in back.reason
        first = spec.rules[0]
        other = spec.with_rules(
            [dataclasses.replace(first, fail_sql=f"({first.fail_sql}) OR false"), *spec.rules[1:]]
        )
        changed = incremental.plan(con, other, cols, as_of)
        assert not changed.incremental and "rule set" in changed.reason
        # a full reload (every row in a new load) is evaluated in full
        con.execute("UPDATE salesforce.opportunity SET _dlt_load_id = 'reload'")
        assert "full reload" in incremental.plan(con, spec, cols, as_of).reason
        con.execute("DELETE FROM quality.eval_state")
        assert "no state" in incremental.plan(con, spec, cols, as_of).reason
    finally:
        con.close()


def test_marketing_file_replaced_is_evaluated_incrementally(tmp_path):
    """A replaced file's rows carry a new load time; an unchanged file's row that now collides
    with a new touchpoint id fails uniqueness in both evaluations."""
    path = tmp_path / "m.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA marketing")
    con.execute(
        """CREATE TABLE marketing.touchpoints AS SELECT
            'tp' || i AS touchpoint_id, TIMESTAMP '2026-06-20' + INTERVAL (i) MINUTE AS occurred_at,
            CASE WHEN i = 7 THEN 'carrier pigeon' ELSE 'paid_search' END AS channel,
            'spring' AS campaign, 'ad_click' AS touch_type, 'h' || i AS email,
            'touchpoints/' || (i % 3) || '.csv' AS source_file, i AS source_line,
            TIMESTAMP '2026-06-21' AS loaded_at
        FROM range(300) t(i)"""
    )
    con.close()
    as_of = dt.datetime(2026, 6, 22, tzinfo=dt.UTC)
    cfg = QualityConfig(as_of=as_of)
    spec = spec_for("marketing.touchpoints", cfg)
    r1 = validate_table(path, spec, cfg, run_id="m1", engine="sql")
    assert r1.evaluation.startswith("full") and r1.counts.failed_rows == 1
    con = duckdb.connect(str(path))
    con.execute("DELETE FROM marketing.touchpoints WHERE source_file = 'touchpoints/1.csv'")
    con.execute(
        """INSERT INTO marketing.touchpoints SELECT
            CASE WHEN i = 4 THEN 'tp3' ELSE 'tp' || i END, TIMESTAMP '2026-06-21', 'email',
            'spring', 'email_click', 'h' || i, 'touchpoints/1.csv', i, TIMESTAMP '2026-06-22'
        FROM range(1, 300, 3) t(i)"""
    )
    con.close()
    scratch = tmp_path / "m_full.duckdb"
    shutil.copy(path, scratch)
    r2 = validate_table(path, spec, cfg, run_id="m2", engine="sql")
    full_cfg = QualityConfig(as_of=as_of, incremental=False)
    f2 = validate_table(
        scratch, spec_for("marketing.touchpoints", full_cfg), full_cfg, "m2", engine="sql"
    )
    assert r2.evaluation.startswith("incremental: 1 new load(s), 100 new live rows")
    _same(r2, f2)
    # tp3 (unchanged file 0) and the new tp3 (file 1, line 4) both fail uniqueness
    assert {s["record_id"] for s in r2.samples if s["rule"].endswith("unique")} == {"tp3"}
    assert r2.counts.quarantined_rows == f2.counts.quarantined_rows == 1
    assert _failing(path, "marketing.touchpoints") == _failing(scratch, "marketing.touchpoints")


def _keys_mismatch(path, table: str, rule: str, expected_sql: str) -> tuple[int, int]:
    """Kept partition keys of (table, rule) not in `expected_sql` (computed from the
    raw table), and the other way round (EXCEPT ALL both ways)."""
    schema, name = table.split(".")
    con = duckdb.connect(str(path))
    try:
        kept = (
            f'SELECT row_key, part, load_id, live FROM quality."partition_keys__{schema}__{name}" '
            f"WHERE rule = '{rule}'"
        )
        return tuple(
            con.execute(f"SELECT count(*) FROM ({a} EXCEPT ALL {b})").fetchall()[0][0]
            for a, b in ((kept, expected_sql), (expected_sql, kept))
        )
    finally:
        con.close()


def _person_keys(table: str) -> str:
    return (
        "SELECT CAST(id AS VARCHAR), lower(trim(email)), CAST(_dlt_load_id AS VARCHAR), "
        f"NOT coalesce(is_deleted, false) FROM salesforce.{table}"
    )


def test_partition_keys_maintained_equal_keys_rebuilt_from_scratch(week, compared):
    """The e-mail partition keys the incremental run maintained from the new load only are
    exactly the keys of every row of the table now (and those the full evaluation rebuilt)."""
    inc, full, _, _ = week
    a, _ = compared
    for obj, table in (("Lead", "lead"), ("Contact", "contact")):
        rule = f"{table}.email.duplicate_person"
        assert "partition keys rebuilt" not in a[obj].evaluation  # maintained, not rebuilt
        assert _keys_mismatch(inc, f"salesforce.{table}", rule, _person_keys(table)) == (0, 0)
        assert _keys_mismatch(full, f"salesforce.{table}", rule, _person_keys(table)) == (0, 0)


def test_foreign_key_candidates_only_from_parents_that_left(week, compared):
    """Children of changed parents are candidates only when the parent row is no longer live
    (here: the deleted opportunity): a live changed parent cannot break a child."""
    inc, _, planted, _ = week
    a, _ = compared
    hist = a["OpportunityHistory"]
    assert "(1 parents gone)" in hist.evaluation, hist.evaluation
    con = duckdb.connect(str(inc))
    try:
        gone_children = con.execute(
            "SELECT count(*) FROM salesforce.opportunity_history WHERE opportunity_id IN "
            "(SELECT id FROM salesforce.opportunity WHERE _dlt_load_id = 'load-week-2' AND "
            "is_deleted)"
        ).fetchall()[0][0]
        # no candidate rows table is left behind
        left = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'quality' "
            "AND table_name LIKE 'candidate_rows__%'"
        ).fetchall()[0][0]
    finally:
        con.close()
    assert gone_children >= len(planted["orphaned_history"]) > 0
    assert left == 0
    # new rows + children of the deleted parent + rows failing before or now, nothing else
    assert _candidates(hist.evaluation) <= (
        planted["written"]["OpportunityHistory"] + gone_children + 2 * hist.counts.failed_rows
    )


def test_partition_keys_out_of_step_are_rebuilt_and_results_stay_exact(week, compared):
    """Keys that are not an image of the table (tampered with, or a row changed outside dlt)
    are rebuilt before the closure; a new lead with an earlier lead's e-mail is found either
    way, and every result equals a from-scratch evaluation."""
    inc, _, _, as_of = week
    d = inc.parent / "keys_tampered.duckdb"
    shutil.copy(inc, d)
    con = duckdb.connect(str(d))
    earlier = con.execute(
        "SELECT id, email FROM salesforce.lead WHERE NOT is_deleted AND email IS NOT NULL "
        "ORDER BY created_date, id LIMIT 1"
    ).fetchall()[0]
    # drop the earlier lead's key: a closure from these keys would miss its partition
    con.execute(
        'DELETE FROM quality."partition_keys__salesforce__lead" WHERE row_key = ?', [earlier[0]]
    )
    con.execute(
        "CREATE TEMP TABLE ch AS SELECT * REPLACE ('00QNEWCOPY00001' AS id, "
        "'  ' || upper(?) AS email, created_date + INTERVAL 1 DAY AS created_date, "
        "'load-week-3' AS _dlt_load_id) FROM salesforce.lead WHERE id = ?",
        [earlier[1], earlier[0]],
    )
    con.execute("INSERT INTO salesforce.lead SELECT * FROM ch")
    con.close()
    scratch = d.parent / "keys_tampered_full.duckdb"
    shutil.copy(d, scratch)
    cfg = QualityConfig(as_of=as_of)
    r = validate_table(d, spec_for("Lead", cfg), cfg, run_id="week-3", engine="sql")
    full_cfg = QualityConfig(as_of=as_of, incremental=False)
    f = validate_table(scratch, spec_for("Lead", full_cfg), full_cfg, "week-3", engine="sql")
    assert r.evaluation.startswith("incremental") and "partition keys rebuilt" in r.evaluation
    _same(r, f)
    assert ("00QNEWCOPY00001", "lead.email.duplicate_person") in _failing(d, "salesforce.lead")
    assert _failing(d, "salesforce.lead") == _failing(scratch, "salesforce.lead")
    rule = "lead.email.duplicate_person"
    assert _keys_mismatch(d, "salesforce.lead", rule, _person_keys("lead")) == (0, 0)


def test_ad_spend_file_shortened_keys_and_results_equal_full(tmp_path):
    """ad_spend's one-row-per-key partition (an expression) is kept in partition_keys; a file
    replaced by a shorter one (its last lines vanish) and a duplicate key planted in it."""
    path = tmp_path / "a.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA marketing")
    con.execute(
        """CREATE TABLE marketing.ad_spend AS SELECT
            DATE '2026-06-01' + INTERVAL (i % 20) DAY AS "date",
            CASE WHEN i % 2 = 0 THEN 'paid_search' ELSE 'email' END AS channel,
            'c' || (i // 40) AS campaign, 10.0 + i AS spend, 'USD' AS currency,
            'ad_spend/' || (i % 4) || '.csv' AS source_file, i AS source_line,
            TIMESTAMP '2026-06-21' AS loaded_at
        FROM range(400) t(i)"""
    )
    con.close()
    as_of = dt.datetime(2026, 6, 22, tzinfo=dt.UTC)
    cfg = QualityConfig(as_of=as_of)
    spec = spec_for("marketing.ad_spend", cfg)
    r1 = validate_table(path, spec, cfg, run_id="a1", engine="sql")
    assert r1.evaluation.startswith("full")
    expected = (
        "SELECT coalesce(source_file, '') || ':' || coalesce(CAST(source_line AS VARCHAR), ''), "
        "CAST(hash(\"date\", channel, campaign, currency) AS VARCHAR), coalesce(source_file, '') "
        "|| '@' || coalesce(CAST(loaded_at AS VARCHAR), ''), true FROM marketing.ad_spend"
    )
    rule = "ad_spend.date_channel_campaign.unique"
    assert _keys_mismatch(path, "marketing.ad_spend", rule, expected) == (0, 0)
    con = duckdb.connect(str(path))
    # file 1 replaced by a shorter version; its first row now duplicates a row of file 0
    con.execute("DELETE FROM marketing.ad_spend WHERE source_file = 'ad_spend/1.csv'")
    con.execute(
        """INSERT INTO marketing.ad_spend SELECT
            DATE '2026-06-01', 'paid_search', 'c0', 1.0, 'USD', 'ad_spend/1.csv', i,
            TIMESTAMP '2026-06-22'
        FROM range(1, 200, 4) t(i)"""
    )
    con.close()
    scratch = tmp_path / "a_full.duckdb"
    shutil.copy(path, scratch)
    r2 = validate_table(path, spec, cfg, run_id="a2", engine="sql")
    full_cfg = QualityConfig(as_of=as_of, incremental=False)
    f2 = validate_table(
        scratch, spec_for("marketing.ad_spend", full_cfg), full_cfg, "a2", engine="sql"
    )
    assert r2.evaluation.startswith("incremental: 1 new load(s), 50 new live rows"), r2.evaluation
    assert "partition keys rebuilt" not in r2.evaluation
    _same(r2, f2)
    assert r2.counts.failed_rows > 0  # the planted duplicates fail in both
    assert _failing(path, "marketing.ad_spend") == _failing(scratch, "marketing.ad_spend")
    assert _keys_mismatch(path, "marketing.ad_spend", rule, expected) == (0, 0)


def _leftover_candidates(path) -> tuple[list[str], int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = "
                "'quality' AND table_name LIKE 'candidate_rows__%'"
            ).fetchall()
        ]
        keys = con.execute("SELECT count(*) FROM quality.incremental_candidates").fetchall()[0][0]
    finally:
        con.close()
    return tables, int(keys)


def test_gx_run_prepares_every_table_first_and_validates_gx_free_tables_first(
    week, compared, tmp_path
):
    """With GX, `validate_run` writes every table's candidate rows before validating any (the
    GX import runs meanwhile), finishes the tables GX has nothing to do for first, yields each
    table under its index in `specs`, and equals the run without that order (the SQL engine's
    table-by-table run on the same state). A caller that stops early leaves no candidate rows."""
    from quality_checks.validate import open_run, validate_run

    inc, _, _, as_of = week
    cfg = QualityConfig(as_of=as_of)
    specs = salesforce_specs(cfg)
    # a second evaluation of the same week: tables with failing rows have candidates, the
    # clean ones none (a mix, in `specs` order)
    stop, whole, sql = tmp_path / "stop.duckdb", tmp_path / "whole.duckdb", tmp_path / "sql.duckdb"
    for p in (stop, whole, sql):
        shutil.copy(inc, p)

    with open_run(stop) as cache:
        run = validate_run(stop, specs, cfg, cache, "stop-early", engine="gx")
        i, spec, first = next(run)
        run.close()
    assert not isinstance(first, Exception) and _candidates(first.evaluation) == 0, first
    assert _leftover_candidates(stop) == ([], 0)

    with open_run(whole) as cache:
        got = list(validate_run(whole, specs, cfg, cache, "whole", engine="gx"))
    counts = [_candidates(r.evaluation) for _, _, r in got]
    assert 0 < counts.count(0) < len(counts)
    assert counts == sorted(counts, key=lambda n: n > 0), counts  # GX-free tables first
    assert sorted(i for i, _, _ in got) == list(range(len(specs)))
    assert all(specs[i].label == s.label == r.label for i, s, r in got)
    assert _leftover_candidates(whole) == ([], 0)
    ref = {r.object: r for r in validate_tables(sql, specs, cfg, run_id="sql", engine="sql")}
    for _, _, r in got:
        assert r.errors == [], (r.label, r.errors)
        _same(r, ref[r.object])
        assert _failing(whole, r.label) == _failing(sql, r.label), r.label
    assert _quarantine(whole) == _quarantine(sql)
