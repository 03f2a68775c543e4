"""DirectLoader on its own (real DuckDB, no dlt, no HTTP): pages re-cut into whole row groups
arrive complete and in one transaction; a failing insert surfaces and leaves nothing; which
first loads may go direct."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa
import pytest

from assets.salesforce.direct import (
    ROW_GROUP,
    DirectLoader,
    direct_eligible,
    dlt_columns,
    merge_eligible,
)
from assets.salesforce.fields import plan_object
from sandbox.schema import OBJECTS

LOAD_ID = "1700000000.123"


def plan(name: str = "CurrencyType"):
    describe = {"fields": [{"name": f.name, "type": f.type} for f in OBJECTS[name].fields]}
    return plan_object(name, describe)


def page(start: int, n: int) -> pa.Table:
    """`n` CurrencyType rows with ids start..start+n-1 and `_dlt_id` = id (as the source)."""
    ids = [f"id{i:09d}" for i in range(start, start + n)]
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    stamps = pa.array([t0 + timedelta(seconds=i) for i in range(start, start + n)])
    cols = {
        "id": pa.array(ids),
        "iso_code": pa.array(["EUR" if i % 2 else None for i in range(n)], pa.string()),
        "conversion_rate": pa.array([i / 7 for i in range(n)]),
        "decimal_places": pa.array([i % 5 for i in range(n)], pa.int64()),
        "is_active": pa.array([i % 3 == 0 for i in range(n)]),
        "is_corporate": pa.array([None] * n, pa.bool_()),
        "created_date": stamps,
        "last_modified_date": stamps,
        "system_modstamp": stamps,
    }
    tbl = pa.Table.from_pydict(cols, schema=plan().arrow_schema)
    return tbl.append_column(pa.field("_dlt_id", pa.string(), nullable=False), tbl["id"])


@pytest.fixture
def conn(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield con
    con.close()


def test_pages_of_any_size_arrive_complete_and_unseen_until_finished(conn, monkeypatch):
    import assets.salesforce.direct as direct

    monkeypatch.setattr(direct, "BATCH_ROW_GROUPS", 1)  # cut at every row group (small test)
    p = plan()
    sizes = [100_000, 50_000, ROW_GROUP + 3, 7, 0, 40_000]  # crosses row groups unevenly
    pages, start = [], 0
    for n in sizes:
        pages.append(page(start, n))
        start += n
    loader = DirectLoader(conn, "salesforce", max_pages=2)
    try:
        for pg in pages:
            loader.put(p, pg, LOAD_ID)
        # nothing is visible to another connection before the object is finished
        other = conn.cursor()
        assert not other.sql(
            "select * from information_schema.tables where table_name = 'currency_type'"
        ).fetchall()
        other.close()
        loader.finish(p, LOAD_ID)
        loader.commit()
    finally:
        loader.close()
    got = conn.sql("select * from salesforce.currency_type order by id").to_arrow_table()
    assert got.column_names == dlt_columns(p)
    assert got.num_rows == sum(sizes) == loader.rows["currency_type"]
    expected = pa.concat_tables(pages).sort_by("id")
    for name in expected.column_names:
        a, b = got[name].combine_chunks(), expected[name].combine_chunks()
        assert a.equals(b.cast(a.type)), name  # DuckDB names the zone of UTC its own way
    assert set(got["_dlt_load_id"].to_pylist()) == {LOAD_ID}
    nullable = dict(
        conn.sql(
            "select column_name, is_nullable from information_schema.columns "
            "where table_name = 'currency_type'"
        ).fetchall()
    )
    assert [c for c, v in nullable.items() if v == "NO"] == ["id", "_dlt_id", "_dlt_load_id"]


def test_failed_insert_is_raised_and_nothing_is_kept(conn):
    p = plan()
    loader = DirectLoader(conn, "salesforce")
    good = page(0, ROW_GROUP)  # a whole row group: inserted before the bad page arrives
    bad = page(ROW_GROUP, 10)
    bad = bad.set_column(0, bad.schema.field(0), pa.nulls(10, pa.string()))  # NOT NULL
    try:
        loader.put(p, good, LOAD_ID)
        loader.put(p, bad, LOAD_ID)
        with pytest.raises(duckdb.Error, match="(?i)not null"):
            loader.finish(p, LOAD_ID)
            loader.commit()
    finally:
        loader.close()
    assert not conn.sql(
        "select * from information_schema.tables where table_name = 'currency_type'"
    ).fetchall()


def test_a_run_that_fails_later_undoes_the_objects_already_committed(conn):
    """Object A finished (committed), an existing empty table filled and finished, then the run
    fails before `commit()`: A's table is dropped, the existing one emptied (not dropped)."""
    a, b = plan("CurrencyType"), plan("Product2")
    conn.execute("create schema salesforce")
    product = b.arrow_schema.append(pa.field("_dlt_id", pa.string())).append(
        pa.field("_dlt_load_id", pa.string())
    )
    empty = product.empty_table()  # noqa: F841  (read by DuckDB by name)
    conn.execute("create table salesforce.product2 as select * from empty")
    loader = DirectLoader(conn, "salesforce")
    try:
        loader.put(a, page(0, 1000), LOAD_ID)
        loader.finish(a, LOAD_ID)
        rows = pa.table(
            {
                f.name: pa.array(["x"] * 3, f.type)
                if f.name.endswith("id")
                else pa.nulls(3, f.type)
                for f in b.arrow_schema
            }
        )
        rows = rows.append_column("_dlt_id", rows["id"])
        loader.put(b, rows, LOAD_ID)
        loader.finish(b, LOAD_ID)
        loader.put(a, page(5000, 10), LOAD_ID)  # a third object's pages, never finished
        other, deadline = conn.cursor(), time.monotonic() + 60
        while True:  # both finished objects become visible (committed)
            try:
                seen = other.sql(
                    "select (select count(*) from salesforce.currency_type), "
                    "(select count(*) from salesforce.product2)"
                ).fetchall()[0]
            except duckdb.CatalogException:
                seen = None
            if seen == (1000, 3):
                break
            assert time.monotonic() < deadline, seen
            time.sleep(0.05)
        other.close()
    finally:
        loader.close()  # no commit(): the run failed
    tables = {r[0] for r in conn.sql("select table_name from duckdb_tables()").fetchall()}
    assert tables == {"product2"}
    assert conn.sql("select count(*) from salesforce.product2").fetchall() == [(0,)]


def test_which_first_loads_may_go_direct():
    p, q, r = plan("CurrencyType"), plan("Product2"), plan("Opportunity")
    columns = {
        "currency_type": dlt_columns(p),  # empty with dlt's columns: yes
        "product2": dlt_columns(q)[:-3] + ["_dlt_id", "_dlt_load_id"],  # lacks a field: no
    }
    assert direct_eligible([p, q, r], columns, {"currency_type", "product2"}) == {
        "CurrencyType",
        "Opportunity",  # absent: yes
    }
    assert direct_eligible([p], columns, set()) == frozenset()  # has rows: no


def test_interleaved_objects_are_refused(conn):
    """Pages of another object before the open one is finished would mix transactions."""
    a, b = plan("CurrencyType"), plan("Product2")
    loader = DirectLoader(conn, "salesforce")
    try:
        loader.put(a, page(0, 10), LOAD_ID)
        loader.put(b, page(0, 10), LOAD_ID)
        with pytest.raises(RuntimeError, match="one after another"):
            loader.finish(a, LOAD_ID)
            loader.commit()
    finally:
        loader.close()


def versions(ids: list[int], minutes: int) -> pa.Table:
    """Rows of `ids` (as `page`) stamped `minutes` later, with a value telling them apart."""
    rows = pa.concat_tables([page(i, 1) for i in ids])
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    stamps = pa.array([t0 + timedelta(seconds=i, minutes=minutes) for i in ids])
    rows = rows.set_column(
        rows.schema.get_field_index("system_modstamp"), "system_modstamp", stamps
    )
    rate = pa.array([float(minutes)] * len(ids))
    return rows.set_column(rows.schema.get_field_index("conversion_rate"), "conversion_rate", rate)


def rows_by_id(conn) -> dict[str, tuple]:
    got = conn.sql(
        "select id, system_modstamp, conversion_rate, _dlt_load_id from salesforce.currency_type"
    ).fetchall()
    return {r[0]: r[1:] for r in got}


def test_merge_replaces_rows_by_id_keeping_the_newest_staged_version(conn):
    """dlt's delete-insert with dedup_sort: every staged Id replaces the stored row, a new Id is
    added, an Id staged twice keeps its newest version whatever the page order, untouched rows
    keep their values and load id."""
    p = plan()
    first = DirectLoader(conn, "salesforce")
    first.put(p, page(0, 10), "load-1")
    first.finish(p, "load-1")
    first.commit()
    first.close()
    stored = rows_by_id(conn)
    changes = [versions([2, 5], 30), versions([20], 40), versions([5, 7], 10)]
    # expected, computed independently: per Id the staged version with the largest stamp
    staged: dict[str, dict] = {}
    for tbl in changes:
        for r in tbl.to_pylist():
            if r["id"] not in staged or r["system_modstamp"] > staged[r["id"]]["system_modstamp"]:
                staged[r["id"]] = r
    expected = dict(stored)
    for i, r in staged.items():
        expected[i] = (r["system_modstamp"], r["conversion_rate"], "load-2")
    loader = DirectLoader(conn, "salesforce", merge=["currency_type"])
    try:
        for tbl in changes:
            loader.put(p, tbl, "load-2")
        loader.finish(p, "load-2")
        loader.commit()
    finally:
        loader.close()
    got = rows_by_id(conn)
    assert got == expected
    assert got["id000000005"][1] == 30.0 and got["id000000007"][1] == 10.0
    assert len(got) == 11 and loader.replaced == 3  # ids 2, 5, 7 existed
    assert loader.rows == {"currency_type": 5}  # staged rows (id 5 twice)


def test_failed_merge_run_rolls_back_every_merged_table(conn):
    """Two objects merged, the run fails before `commit()`: both tables are as before."""
    a, b = plan("CurrencyType"), plan("Product2")
    first = DirectLoader(conn, "salesforce")
    first.put(a, page(0, 10), "load-1")
    first.finish(a, "load-1")
    first.commit()
    first.close()
    stored = rows_by_id(conn)
    loader = DirectLoader(conn, "salesforce", merge=["currency_type", "product2"])
    try:
        loader.put(a, versions([1, 30], 5), "load-2")
        loader.finish(a, "load-2")
        loader.put(b, page(0, 3), "load-2")  # wrong columns for Product2: fails
        with pytest.raises(Exception):  # noqa: B017
            loader.finish(b, "load-2")
            loader.commit()
    finally:
        loader.close()
    assert rows_by_id(conn) == stored


def test_which_change_sets_may_be_merged_directly():
    p, q, r = plan("CurrencyType"), plan("Product2"), plan("Opportunity")
    columns = {
        "currency_type": dlt_columns(p),  # dlt's columns: yes
        "product2": dlt_columns(q)[:-3] + ["_dlt_id", "_dlt_load_id"],  # lacks a field: no
    }
    assert merge_eligible([p, q, r], columns) == {"CurrencyType"}  # Opportunity absent: no


def test_may_exist_is_false_only_for_records_provably_not_stored():
    """New record (created at/after `since`, Id not among the stored rows stamped or created
    since): cannot be stored. Anything else may be: created before, Id among them, unknown
    creation time, or no lookup at all."""
    from assets.salesforce.source import _may_exist

    since = datetime(2024, 1, 1, 0, 1, tzinfo=UTC)
    rows = page(58, 6)  # created 0:00:58 .. 0:01:03
    created = pa.array([*rows["created_date"].to_pylist()[:5], None], pa.timestamp("us", "UTC"))
    rows = rows.set_column(rows.schema.get_field_index("created_date"), "created_date", created)
    stored = pa.array(["id000000061"])
    got = _may_exist(rows, since, stored).to_pylist()
    # 58, 59: created before since; 60: new; 61: stored; 62: new; 63: creation unknown
    assert got == [True, True, False, True, False, True]
    assert _may_exist(rows, since, None).to_pylist() == [True] * 6


def test_rows_flagged_new_skip_the_delete_the_others_replace(conn):
    """The staged flag decides the delete: a row flagged as possibly stored replaces the stored
    one, a row flagged new is only inserted (here, deliberately wrongly flagged, the stored
    row stays beside it: the delete was skipped, the id column not read)."""
    from assets.salesforce.direct import MAY_EXIST

    p = plan()
    first = DirectLoader(conn, "salesforce")
    first.put(p, page(0, 4), "load-1")
    first.finish(p, "load-1")
    first.commit()
    first.close()
    changes = versions([1, 2], 30)
    changes = changes.append_column(MAY_EXIST, pa.array([True, False]))
    loader = DirectLoader(conn, "salesforce", merge=["currency_type"])
    try:
        loader.put(p, changes, "load-2")
        loader.finish(p, "load-2")
        loader.commit()
    finally:
        loader.close()
    got = conn.sql(
        "select id, _dlt_load_id from salesforce.currency_type order by id, _dlt_load_id"
    ).fetchall()
    assert got == [
        ("id000000000", "load-1"),
        ("id000000001", "load-2"),
        ("id000000002", "load-1"),
        ("id000000002", "load-2"),
        ("id000000003", "load-1"),
    ]
    assert loader.replaced == 1
    cols = [r[0] for r in conn.sql("describe salesforce.currency_type").fetchall()]
    assert MAY_EXIST not in cols
    # all flagged new: no delete statement at all
    only_new = versions([10, 11], 5).append_column(MAY_EXIST, pa.array([False, False]))
    again = DirectLoader(conn, "salesforce", merge=["currency_type"])
    try:
        again.put(p, only_new, "load-3")
        again.finish(p, "load-3")
        again.commit()
    finally:
        again.close()
    assert again.delete_skipped == 1 and again.replaced == 0
    assert conn.sql("select count(*) from salesforce.currency_type").fetchall() == [(7,)]
