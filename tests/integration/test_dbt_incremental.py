"""Incremental dbt builds give exactly the tables a full rebuild gives on the same data.

One session: a small org loaded the way dlt loads it, a full `dbt run`, a run with no change
(nothing recomputed), then `sandbox.org.advance(org, 7)` merged the way dlt merges (new load id
on every new, changed or deleted row) plus targeted changes the advance does not make (an
account's segment, an owner's manager, a contact's email, a late touchpoint file, a late touch
weeks before the as-of date, quarantine flips in both directions; `int_opportunity_states_sequenced`
built alone between the advance and these, so that the models chained to it detect on their own),
an incremental `dbt build` (data tests and contracts included), and `dbt run --full-refresh` of
the incremental models on the same data: EXCEPT ALL both ways must be empty for every incremental
model.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime

import duckdb
import pytest

from assets.dbt import incremental_check
from assets.dbt.incremental_check import (
    SALT,
    add_touchpoints,
    changed_opportunities,
    differences,
    load_warehouse,
    merge_like_dlt,
    run_dbt,
    snapshot_tables,
)
from assets.dbt.project import PROJECT_DIR
from sandbox.org import advance, generate

pytestmark = pytest.mark.slow

# every opportunity-keyed incremental model of the project (checked below against the SQL)
INCREMENTAL_MODELS = incremental_check.INCREMENTAL_MODELS

LOAD_ID = "9999999999.000001"  # after any load id of the first load (time.time() based)
# the targeted changes: a later load than the advance (between them one model is built alone)
TARGETED_LOAD_ID = "9999999999.0000015"
# models that take their upstream models' recomputed ids when the chain holds
# (macros/incremental_by_opportunity.sql, `upstream`)
CHAINED = {
    "attribution_touchpoints": ("int_opportunity_journeys",),
    "pipeline_snapshots": ("opportunity_history", "opportunities"),
    "opportunity_history": ("int_opportunity_states_sequenced", "opportunities"),
    "int_opportunity_stage_entries_aggregated": ("int_opportunity_states_sequenced",),
}


def _sql(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list:
    return con.execute(sql, params or []).fetchall()


def _open_opportunity(con, offset: int) -> tuple[str, str, str]:
    """(opportunity id, account id, owner id) of an open deal with a long history."""
    return _sql(
        con,
        "select o.id, o.account_id, o.owner_id from salesforce.opportunity as o "
        "join (select opportunity_id, count(*) as n from salesforce.opportunity_history "
        "group by 1) as h on h.opportunity_id = o.id "
        "where not o.is_closed and not o.is_deleted and o.account_id in "
        "(select id from salesforce.account) order by h.n desc, o.id limit 1 offset ?",
        [offset],
    )[0]


def _late_old_touch(con, loaded_at: datetime) -> tuple[str, str]:
    """A touch loaded late whose time is weeks before the as-of date: two days before the close
    of a deal closed at least 30 days earlier, for a contact linked to it (the change detection
    hashes only the people of deals closing after the earliest new touch)."""
    opportunity, email_hash = _sql(
        con,
        "select o.id, sha256(? || lower(trim(c.email))) from salesforce.opportunity as o "
        "join salesforce.opportunity_contact_role as r on r.opportunity_id = o.id "
        "join salesforce.contact as c on c.id = r.contact_id "
        "where o.is_closed and not o.is_deleted and not c.is_deleted and c.email is not null "
        "and o.close_date < (select max(cast(system_modstamp as date)) - 30 "
        "from salesforce.opportunity) and o.close_date - 2 > cast(o.created_date as date) "
        "order by o.close_date desc, o.id limit 1",
        [SALT],
    )[0]
    _sql(
        con,
        "insert into marketing.touchpoints by name select 'late-old-1' as touchpoint_id, "
        "cast(o.close_date - 2 as timestamptz) as occurred_at, 'Email' as channel, "
        "'late-old-file' as campaign, 'click' as touch_type, ? as email_hash, "
        "'touchpoints/third.csv' as source_file, 0 as source_line, "
        "cast(? as timestamp) as loaded_at from salesforce.opportunity as o where o.id = ?",
        [email_hash, loaded_at, opportunity],
    )
    return opportunity, "late-old-1"


def _targeted_changes(con) -> dict[str, str]:
    """Changes the advance does not make, each with the new load id, as dlt would merge them."""
    opp_a, account, _ = _open_opportunity(con, 0)
    opp_b, _, owner = _open_opportunity(con, 1)
    segments = [r[0] for r in _sql(con, "select distinct segment_c from salesforce.account")]
    current = _sql(con, "select segment_c from salesforce.account where id = ?", [account])[0][0]
    other = next(s for s in segments if s is not None and s != current)
    _sql(
        con,
        "update salesforce.account set segment_c = ?, _dlt_load_id = ? where id = ?",
        [other, TARGETED_LOAD_ID, account],
    )
    manager = _sql(
        con,
        'select id from salesforce."user" where id <> ? and id <> coalesce('
        "(select manager_id from salesforce.\"user\" where id = ?), '') order by id limit 1",
        [owner, owner],
    )[0][0]
    _sql(
        con,
        'update salesforce."user" set manager_id = ?, _dlt_load_id = ? where id = ?',
        [manager, TARGETED_LOAD_ID, owner],
    )
    # a contact with touches, linked to a deal: its new email loses them
    contact = _sql(
        con,
        "select c.id from salesforce.contact as c "
        "join salesforce.opportunity_contact_role as r on r.contact_id = c.id "
        "where c.email is not null and not c.is_deleted order by c.id limit 1",
    )[0][0]
    _sql(
        con,
        "update salesforce.contact set email = 'moved-' || email, _dlt_load_id = ? where id = ?",
        [TARGETED_LOAD_ID, contact],
    )
    # quarantine: opp_c enters (and one history row of opp_d), opp_e (quarantined before) leaves
    opp_c, _, _ = _open_opportunity(con, 2)
    opp_d, _, _ = _open_opportunity(con, 3)
    history_d = _sql(
        con,
        "select id from salesforce.opportunity_history where opportunity_id = ? "
        "order by created_date limit 1 offset 1",
        [opp_d],
    )[0][0]
    _sql(
        con,
        "insert into quality.quarantine_ids values "
        "('Opportunity', ?, 'test', 'planted', now()), "
        "('OpportunityHistory', ?, 'test', 'planted', now())",
        [opp_c, history_d],
    )
    _sql(con, "delete from quality.quarantine_ids where rule = 'test-before'")
    # a product's family (the advance changes line items, never products): the deal whose only
    # line item is that product changes primary family
    opp_f, product = _sql(
        con,
        "select li.opportunity_id, any_value(li.product2_id) from "
        "salesforce.opportunity_line_item as li "
        "join salesforce.opportunity as o on o.id = li.opportunity_id and not o.is_deleted "
        "where not li.is_deleted group by 1 having count(*) = 1 "
        "order by (select count(*) from salesforce.opportunity_line_item as x "
        "where x.product2_id = any_value(li.product2_id)), 1 limit 1",
    )[0]
    _sql(
        con,
        "update salesforce.product2 set family = 'Renamed family', _dlt_load_id = ? where id = ?",
        [TARGETED_LOAD_ID, product],
    )
    # a deleted line item (dlt merges it with is_deleted = true): the deal's only line item
    # goes, and with it the deal's primary product family row
    opp_g = _sql(
        con,
        "select li.opportunity_id from salesforce.opportunity_line_item as li "
        "join salesforce.opportunity as o on o.id = li.opportunity_id and not o.is_deleted "
        "where not li.is_deleted and li.opportunity_id <> ? group by 1 having count(*) = 1 "
        "order by 1 limit 1",
        [opp_f],
    )[0][0]
    _sql(
        con,
        "update salesforce.opportunity_line_item set is_deleted = true, _dlt_load_id = ? "
        "where opportunity_id = ?",
        [TARGETED_LOAD_ID, opp_g],
    )
    return {
        "account": opp_a,
        "owner": opp_b,
        "quarantined": opp_c,
        "history": opp_d,
        "product": opp_f,
        "line_item_deleted": opp_g,
    }


def _recorded(warehouse) -> dict[str, set[str]]:
    """Per incremental model: the opportunities its last build recomputed."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = _sql(
            con,
            "select model, list(opportunity_id) from intermediate.incremental_changed group by 1",
        )
    finally:
        con.close()
    return {model.split(".")[-1]: set(ids) for model, ids in rows}


@pytest.fixture(scope="session")
def incremental(tmp_path_factory):
    home = tmp_path_factory.mktemp("dbt_incremental")
    warehouse, target = home / "warehouse.duckdb", home / "target"
    org = generate("small", seed=23, end=date(2026, 6, 1))
    load_warehouse(org, warehouse)
    con = duckdb.connect(str(warehouse))
    try:
        _sql(con, "create schema quality")
        _sql(
            con,
            "create table quality.quarantine_ids (object varchar, record_id varchar, "
            "rule varchar, reason varchar, detected_at timestamp)",
        )
        before = _open_opportunity(con, 4)[0]
        _sql(
            con,
            "insert into quality.quarantine_ids values "
            "('Opportunity', ?, 'test-before', 'planted', now())",
            [before],
        )
    finally:
        con.close()
    # seed + models, no tests: the data tests run with the incremental build below
    run_dbt(
        ["build", "--exclude-resource-type", "test", "--exclude-resource-type", "unit_test"],
        home,
        target,
    )
    full_counts = changed_opportunities(warehouse)
    run_dbt(["run", "--select", *INCREMENTAL_MODELS], home, target)
    unchanged_counts = changed_opportunities(warehouse)
    snapshot_tables(warehouse, INCREMENTAL_MODELS, "before_changes")

    merged = merge_like_dlt(org, advance(org, 7), warehouse, load_id=LOAD_ID)
    # one upstream model alone: its downstream models' chain is broken, they detect on their
    # own (everything since their last build, the advance included)
    run_dbt(["run", "--select", "int_opportunity_states_sequenced"], home, target)
    alone = _recorded(warehouse)["int_opportunity_states_sequenced"]
    con = duckdb.connect(str(warehouse))
    try:
        changed = _targeted_changes(con)
        changed["released"] = before
        changed["late_old_touch"] = _late_old_touch(con, datetime(2026, 7, 1))
    finally:
        con.close()
    added = add_touchpoints(warehouse, 40, datetime(2026, 7, 1))
    build = run_dbt(["build", "--exclude-resource-type", "unit_test"], home, target)
    incremental_counts = changed_opportunities(warehouse)
    recorded = _recorded(warehouse)
    snapshot_tables(warehouse, INCREMENTAL_MODELS, "incremental_copy")
    run_dbt(["run", "--full-refresh", "--select", *INCREMENTAL_MODELS], home, target)
    return {
        "warehouse": warehouse,
        "target": target,
        "merged": merged,
        "added": added,
        "changed": changed,
        "build": build,
        "counts": (full_counts, unchanged_counts, incremental_counts),
        "alone": alone,
        "recorded": recorded,
    }


def test_the_list_of_incremental_models_is_complete():
    # the equality tests below cover exactly the models dbt builds incrementally
    models = PROJECT_DIR / "models"
    incremental = {
        sql.stem
        for sql in models.rglob("*.sql")
        if re.search(r"materialized\s*=\s*['\"]incremental['\"]", sql.read_text())
    }
    assert incremental == set(INCREMENTAL_MODELS)
    for name, schema in INCREMENTAL_MODELS.items():
        folder = next(models.rglob(f"{name}.sql")).relative_to(models).parts[0]
        assert schema == folder, name


def test_incremental_tables_equal_a_full_refresh(incremental):
    diffs = differences(incremental["warehouse"], INCREMENTAL_MODELS, "incremental_copy")
    assert set(diffs) == set(INCREMENTAL_MODELS)
    for name, (rows, only_incremental, only_full) in diffs.items():
        assert rows > 0, name
        assert (only_incremental, only_full) == (0, 0), (name, only_incremental, only_full)


def test_the_changes_reached_the_tables(incremental):
    """The week of changes and each targeted change altered the rebuilt tables (else the
    equality above would prove nothing about them)."""
    assert incremental["merged"]["opportunity"] > 0 and incremental["merged"]["lead"] > 0
    assert incremental["added"] == 40
    changed = incremental["changed"]
    con = duckdb.connect(str(incremental["warehouse"]), read_only=True)
    try:

        def moved(table: str, opportunity_id: str) -> bool:
            before = _sql(
                con,
                f"select * from before_changes.{table} where opportunity_id = ? "
                f"except all select * from {INCREMENTAL_MODELS[table]}.{table} "
                "where opportunity_id = ?",
                [opportunity_id, opportunity_id],
            )
            after = _sql(
                con,
                f"select * from {INCREMENTAL_MODELS[table]}.{table} where opportunity_id = ? "
                f"except all select * from before_changes.{table} where opportunity_id = ?",
                [opportunity_id, opportunity_id],
            )
            return bool(before or after)

        assert moved("opportunity_history", changed["account"])  # segment
        assert moved("pipeline_snapshots", changed["owner"])  # manager
        assert moved("int_opportunity_states_sequenced", changed["quarantined"])  # gone
        assert moved("int_opportunity_states_sequenced", changed["history"])  # one state less
        assert moved("int_opportunity_states_sequenced", changed["released"])  # back
        assert moved("opportunities", changed["product"])  # primary product family
        assert moved("int_opportunity_product_families_ranked", changed["product"])
        # the deleted line item: the deal had a primary family before and has none now
        gone = changed["line_item_deleted"]
        assert moved("int_opportunity_product_families_ranked", gone)
        assert not _sql(
            con,
            "select 1 from intermediate.int_opportunity_product_families_ranked "
            "where opportunity_id = ?",
            [gone],
        )
        assert moved("opportunities", changed["account"])  # segment
        # new weeks for every open deal
        weeks = _sql(
            con,
            "select count(distinct snapshot_date) from marts.pipeline_snapshots "
            "where snapshot_date > (select max(snapshot_date) from before_changes."
            "pipeline_snapshots)",
        )[0][0]
        assert weeks >= 1
        # the late touchpoint file reached the journeys
        late = _sql(
            con,
            "select count(*) from intermediate.int_opportunity_journeys "
            "where touchpoint_id like 'new-%'",
        )[0][0]
        assert late > 0
    finally:
        con.close()


def test_chained_models_take_their_upstream_changes(incremental):
    """Where the upstream models' previous build was the model's last one, the model recomputes
    exactly what they recomputed; where one was built in between (the states, alone), the
    models reading it detect on their own and catch what that build had already taken."""
    recorded, alone = incremental["recorded"], incremental["alone"]
    assert alone  # the advance reached the states built alone
    for model in ("attribution_touchpoints", "pipeline_snapshots"):
        upstream = set().union(*(recorded[name] for name in CHAINED[model]))
        assert recorded[model] == upstream, model
    for model in ("opportunity_history", "int_opportunity_stage_entries_aggregated"):
        assert alone <= recorded[model], model
        assert not alone <= recorded["int_opportunity_states_sequenced"]  # not in its set again
    # the late touch weeks before the as-of date reached its closed deal's journey
    opportunity, touch = incremental["changed"]["late_old_touch"]
    assert opportunity in recorded["int_opportunity_journeys"]
    con = duckdb.connect(str(incremental["warehouse"]), read_only=True)
    try:
        rows = _sql(
            con,
            "select count(*) from intermediate.int_opportunity_journeys "
            "where opportunity_id = ? and touchpoint_id = ?",
            [opportunity, touch],
        )
    finally:
        con.close()
    assert rows == [(1,)]


def test_only_changed_opportunities_are_recomputed(incremental):
    full_counts, unchanged_counts, incremental_counts = incremental["counts"]
    models = set(INCREMENTAL_MODELS)
    assert set(full_counts) == models and all(v is None for v in full_counts.values())
    # nothing changed: nothing recomputed
    assert unchanged_counts == dict.fromkeys(models, 0)
    con = duckdb.connect(str(incremental["warehouse"]), read_only=True)
    try:
        total = _sql(con, "select count(*) from salesforce.opportunity")[0][0]
    finally:
        con.close()
    for name, count in incremental_counts.items():
        assert count is not None and 0 < count < total / 2, (name, count, total)


def test_incremental_build_passes_data_tests_and_contracts(incremental):
    results = json.loads((incremental["target"] / "run_results.json").read_text())["results"]
    assert results  # the last run: the full refresh of the incremental models
    nodes = incremental["build"]["nodes"]
    assert all(f"model.salesops.{name}" in nodes for name in INCREMENTAL_MODELS)
    assert sum(uid.startswith("test.") for uid in nodes) >= 100
    assert not any(uid.startswith("unit_test.") for uid in nodes)


# --- data tests on incremental runs check the changed opportunities only ----------------------

UNIQUE_CREDITS = "unique_combination_attribution_touchpoints_opportunity_id__touchpoint_id__"
SUM_TO_ONE = "test.salesops.assert_attribution_credits_sum_to_one"
SCOPE_TABLE = "intermediate.incremental_changed"
# staging's orphan-key tests are configured to warn (the sandbox plants orphans)
OK_STATUSES = {"pass", "success", "warn"}


def _compiled(target, prefix: str) -> dict[str, str]:
    results = json.loads((target / "run_results.json").read_text())["results"]
    return {
        r["unique_id"]: r.get("compiled_code") or ""
        for r in results
        if r["unique_id"].startswith(prefix)
    }


def _green(warehouse) -> bool | None:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        baseline = "intermediate.incremental_tests_baseline"
        return _sql(con, f"select bool_and(green) from {baseline}")[0][0]
    finally:
        con.close()


def _plant_duplicate(warehouse, opportunity_id: str) -> None:
    """One attribution row of the opportunity twice: a duplicate key and a credit sum of 2."""
    con = duckdb.connect(str(warehouse))
    try:
        _sql(
            con,
            "insert into marts.attribution_touchpoints select * from marts.attribution_touchpoints "
            "where opportunity_id = ? and attribution_model = 'linear' order by touchpoint_id "
            "limit 1",
            [opportunity_id],
        )
    finally:
        con.close()


@pytest.fixture(scope="session")
def scoped_tests(incremental):
    """After the equality checks above: a whole build (green baseline), a few deals touched and
    an incremental build (tests scoped to them), then violations planted in a changed and in an
    unchanged deal's attribution rows and the attribution tests run three times."""
    warehouse, target = incremental["warehouse"], incremental["target"]
    home = warehouse.parent
    build_args = ["build", "--exclude-resource-type", "unit_test"]
    # the last run (a full refresh of the models without their tests) leaves no green baseline
    whole = run_dbt(build_args, home, target)
    whole_sql = _compiled(target, "test.salesops.")
    green_after_whole = _green(warehouse)
    con = duckdb.connect(str(warehouse))
    try:
        touched = [
            r[0]
            for r in _sql(
                con,
                "select opportunity_id from marts.attribution_touchpoints "
                "group by 1 order by 1 limit 3",
            )
        ]
        _sql(
            con,
            "update salesforce.opportunity set _dlt_load_id = '9999999999.000002' "
            f"where id in ({', '.join('?' * len(touched))})",
            touched,
        )
        untouched = _sql(
            con,
            "select opportunity_id from marts.attribution_touchpoints "
            f"where opportunity_id not in ({', '.join('?' * len(touched))}) "
            "group by 1 order by 1 desc limit 1",
            touched,
        )[0][0]
    finally:
        con.close()
    scoped = run_dbt(build_args, home, target)
    scoped_sql = _compiled(target, "test.salesops.")
    green_after_scoped = _green(warehouse)
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        recorded = {
            model: sorted(ids)
            for model, ids in _sql(
                con, f"select model, list(opportunity_id) from {SCOPE_TABLE} group by 1"
            )
        }
    finally:
        con.close()
    select = ["test", "--select", "attribution_touchpoints"]
    _plant_duplicate(warehouse, untouched)
    missed = run_dbt(select, home, target, check=False)
    _plant_duplicate(warehouse, touched[0])
    caught = run_dbt(select, home, target, check=False)
    after_failure = run_dbt(select, home, target, check=False)
    return {
        "whole": whole,
        "whole_sql": whole_sql,
        "green_after_whole": green_after_whole,
        "scoped": scoped,
        "scoped_sql": scoped_sql,
        "green_after_scoped": green_after_scoped,
        "touched": touched,
        "recorded": recorded,
        "missed": missed,
        "caught": caught,
        "after_failure": after_failure,
    }


def _by_prefix(values: dict, prefix: str):
    return next(v for k, v in values.items() if k.startswith(prefix))


def test_whole_tables_are_tested_until_a_green_run(scoped_tests):
    # the build after a run without tests reads whole tables, passes, and becomes the baseline
    assert not any(SCOPE_TABLE in sql for sql in scoped_tests["whole_sql"].values())
    assert set(scoped_tests["whole"]["status"].values()) <= OK_STATUSES
    assert scoped_tests["green_after_whole"] is True


def test_incremental_build_tests_only_the_changed_opportunities(scoped_tests):
    sql = scoped_tests["scoped_sql"]
    scoped = {uid for uid, code in sql.items() if SCOPE_TABLE in code}
    # every scoped test of an incremental model, and the per-opportunity singular test
    assert any(uid.startswith(f"test.salesops.{UNIQUE_CREDITS}") for uid in scoped)
    assert SUM_TO_ONE in scoped
    for model in ("int_opportunity_journeys", "opportunities", "opportunity_history"):
        assert any(f"_{model}_" in uid for uid in scoped), model
    # tests of other models still read whole tables
    assert not any("stg_salesforce__" in uid or "pipeline_snapshots" in uid for uid in scoped)
    # the recorded scope is what the touched deals changed (each model saw the three deals)
    touched = sorted(scoped_tests["touched"])
    assert scoped_tests["recorded"]["marts.attribution_touchpoints"] == touched
    assert scoped_tests["recorded"]["intermediate.int_opportunity_journeys"] == touched
    assert set(scoped_tests["scoped"]["status"].values()) <= OK_STATUSES
    assert scoped_tests["green_after_scoped"] is True


def test_scoped_tests_catch_a_violation_in_a_changed_opportunity(scoped_tests):
    missed, caught, after = (
        scoped_tests["missed"],
        scoped_tests["caught"],
        scoped_tests["after_failure"],
    )
    # a duplicate planted outside dbt in a deal no build changed is outside the scope (the
    # scope assumes the rows no build touched are those the last green run tested) ...
    assert missed["returncode"] == 0
    assert _by_prefix(missed["status"], f"test.salesops.{UNIQUE_CREDITS}") == "pass"
    # ... the same in a changed deal fails both the key test and the per-deal credit sums
    assert caught["returncode"] != 0
    assert _by_prefix(caught["status"], f"test.salesops.{UNIQUE_CREDITS}") == "fail"
    assert _by_prefix(caught["failures"], f"test.salesops.{UNIQUE_CREDITS}") == 1
    assert caught["status"][SUM_TO_ONE] == "fail"
    # and a failed run leaves no green baseline: the next run tests whole tables and finds both
    assert _by_prefix(after["status"], f"test.salesops.{UNIQUE_CREDITS}") == "fail"
    assert _by_prefix(after["failures"], f"test.salesops.{UNIQUE_CREDITS}") == 2


# --- staging tests on incremental runs check the raw rows loaded since the last green run -----

STAGING = "path:models/staging"
NEW_LOAD_ID = "9999999999.000003"
UNIQUE_TASK = "test.salesops.unique_stg_salesforce__tasks_task_id"
UNIQUE_TOUCH = "test.salesops.unique_stg_marketing__touchpoints_touchpoint_id"
HISTORY_PROBABILITY = "test.salesops.probability_fraction_stg_salesforce__opportunity_history_"
RAW_SCOPE = "_dlt_load_id >"


def _uid(uids, prefix: str) -> str | None:
    """The unique id of a generic test (dbt appends a hash) by its name."""
    return next((uid for uid in uids if uid.startswith(prefix + ".")), None)


def _plant_staging_violations(warehouse) -> dict[str, str]:
    """After a green run: a new task row with an OLD task's id, a new touchpoint row with an old
    touchpoint's id, a new history row with probability 250, an old history row set to -10
    WITHOUT a new load id (not a dlt write: out of scope by design), and the release of a history
    row quarantined at the green run whose probability is 900 (back in the view)."""
    con = duckdb.connect(str(warehouse))
    try:
        task = _sql(con, "select min(id) from salesforce.task where not is_deleted")[0][0]
        _sql(
            con,
            "insert into salesforce.task select * replace (? as _dlt_load_id) "
            "from salesforce.task where id = ?",
            [NEW_LOAD_ID, task],
        )
        touch = _sql(con, "select min(touchpoint_id) from marketing.touchpoints")[0][0]
        _sql(
            con,
            "insert into marketing.touchpoints select * replace "
            "(loaded_at + interval 1 day as loaded_at) from marketing.touchpoints "
            "where touchpoint_id = ?",
            [touch],
        )
        new, old = [
            r[0]
            for r in _sql(
                con,
                "select id from salesforce.opportunity_history where not is_deleted and id not in "
                "(select record_id from quality.quarantine_ids) order by id limit 2",
            )
        ]
        _sql(
            con,
            "update salesforce.opportunity_history set probability = 250, _dlt_load_id = ? "
            "where id = ?",
            [NEW_LOAD_ID, new],
        )
        _sql(con, "update salesforce.opportunity_history set probability = -10 where id = ?", [old])
        _sql(con, "delete from quality.quarantine_ids where rule = 'test-staging'")
    finally:
        con.close()
    return {"task": task, "touchpoint": touch, "new": new, "old": old}


@pytest.fixture(scope="session")
def staging_tests(incremental, scoped_tests):
    """After the attribution checks: a whole build that is green (a history row quarantined with
    a bad probability), violations planted in raw rows, then the staging tests scoped and with
    whole_table_tests on the same data."""
    assert scoped_tests["caught"]["returncode"] != 0  # runs after the attribution checks
    warehouse, target = incremental["warehouse"], incremental["target"]
    home = warehouse.parent
    con = duckdb.connect(str(warehouse))
    try:
        released = _sql(
            con,
            "select max(id) from salesforce.opportunity_history where not is_deleted "
            "and id not in (select record_id from quality.quarantine_ids)",
        )[0][0]
        _sql(
            con,
            "update salesforce.opportunity_history set probability = 900 where id = ?",
            [released],
        )
        _sql(
            con,
            "insert into quality.quarantine_ids values "
            "('OpportunityHistory', ?, 'test-staging', 'planted', now())",
            [released],
        )
    finally:
        con.close()
    # the attribution runs above failed: whole tables, green, watermarks recorded
    green = run_dbt(
        ["build", "--full-refresh", "--exclude-resource-type", "unit_test"], home, target
    )
    green_sql = _compiled(target, "test.salesops.")
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        marks = dict(
            _sql(
                con,
                "select source, coalesce(load_id, cast(loaded_at as varchar)) "
                "from intermediate.incremental_tests_watermarks",
            )
        )
    finally:
        con.close()
    planted = _plant_staging_violations(warehouse)
    planted["released"] = released
    scoped = run_dbt(["test", "--select", STAGING], home, target, check=False)
    scoped_sql = _compiled(target, "test.salesops.")
    whole = run_dbt(
        ["test", "--select", STAGING, "--vars", "{whole_table_tests: true}"],
        home,
        target,
        check=False,
    )
    whole_sql = _compiled(target, "test.salesops.")
    return {
        "green": green,
        "green_sql": green_sql,
        "marks": marks,
        "planted": planted,
        "scoped": scoped,
        "scoped_sql": scoped_sql,
        "whole": whole,
        "whole_sql": whole_sql,
    }


def test_staging_tests_read_whole_views_until_a_green_run(staging_tests, scoped_tests):
    # the build after failed runs reads whole views, passes and records the raw watermarks
    assert not any(RAW_SCOPE in sql for sql in staging_tests["green_sql"].values())
    assert set(staging_tests["green"]["status"].values()) <= OK_STATUSES
    assert staging_tests["marks"]["salesforce.task"] is not None
    assert staging_tests["marks"]["marketing.touchpoints"] is not None
    # whole_table_tests reads whole views
    assert not any(RAW_SCOPE in sql for sql in staging_tests["whole_sql"].values())
    # the green build before the attribution checks scoped every staging key test
    scoped = {uid for uid, sql in scoped_tests["scoped_sql"].items() if RAW_SCOPE in sql}
    assert _uid(scoped, UNIQUE_TASK) and _uid(scoped, UNIQUE_TASK.replace("unique", "not_null"))
    # and the orphan-key tests (tests/integration/test_dbt_scoped_tests.py)
    assert any("relationships_stg_salesforce__" in uid for uid in scoped)


def test_scoped_staging_tests_fail_exactly_like_whole_views(staging_tests):
    scoped, whole = staging_tests["scoped"], staging_tests["whole"]
    scoped_sql = staging_tests["scoped_sql"]
    task, touch = _uid(scoped_sql, UNIQUE_TASK), _uid(scoped_sql, UNIQUE_TOUCH)
    assert RAW_SCOPE in scoped_sql[task] and "loaded_at >" in scoped_sql[touch]
    assert set(scoped["status"]) == set(whole["status"]) and len(scoped["status"]) >= 40
    # an OLD key duplicated by a new row (dlt load id / touchpoint file) is caught, same count
    for uid in (task, touch):
        assert scoped["status"][uid] == whole["status"][uid] == "fail", uid
        assert scoped["failures"][uid] == whole["failures"][uid] == 1, uid
    # the history probabilities: the new row and the row released from quarantine are caught;
    # the old row changed without a load (no dlt write does that) only by the whole view
    history = next(uid for uid in scoped["status"] if uid.startswith(HISTORY_PROBABILITY))
    assert scoped["status"][history] == whole["status"][history] == "fail"
    assert (scoped["failures"][history], whole["failures"][history]) == (2, 3)
    # every other staging test: the same result either way
    for uid in set(scoped["status"]) - {task, touch, history}:
        assert scoped["status"][uid] == whole["status"][uid], uid
        assert scoped["failures"][uid] == whole["failures"][uid], uid
