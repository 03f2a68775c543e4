"""First loads appended straight into DuckDB beside the fetch (assets/salesforce/direct.py).

The reference is the dlt path of the same run (SALESOPS_SF_DIRECT_LOAD=off: parquet files loaded
by dlt) and the org the emulator serves: same rows, same DDL, same dlt schema / state / load
bookkeeping; a failure leaves nothing behind; incremental merges work on the direct tables.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from assets.salesforce.load import extract_salesforce, pipeline
from assets.salesforce.source import ExtractOptions
from sandbox.api import SandboxServer
from sandbox.org import SCALES, advance, generate
from sandbox.schema import snake

TINY = {k: max(2, v // 10) for k, v in SCALES["small"].items()}
PAGE = 250
# every column type: text, bool, double, int (Task.CallDurationInSeconds), date, datetime
OBJECTS = ["Opportunity", "Task", "Lead", "CurrencyType", "Product2"]


def options(direct: bool, **kw) -> ExtractOptions:
    return ExtractOptions(bulk_threshold=None, batch_size=PAGE, direct_load=direct, **kw)


@pytest.fixture(scope="module")
def orgs():
    org = generate(TINY, seed=5)
    return org, advance(org, 20)


@pytest.fixture
def sandbox(orgs, tmp_path, monkeypatch):
    monkeypatch.setenv("SALESOPS_HOME", str(tmp_path / "direct"))
    monkeypatch.delenv("SALESOPS_SF_EXTRA_FIELDS", raising=False)
    with SandboxServer(orgs[0], page_size=PAGE) as srv:
        for k, v in srv.credentials.items():
            monkeypatch.setenv(k, v)
        yield srv


def query(home, sql: str) -> list[tuple]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()


def table(home, sobject: str) -> pa.Table:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.sql(
            f"select * exclude (_dlt_load_id) from salesforce.{snake(sobject)} order by id"
        ).to_arrow_table()
    finally:
        con.close()


def served(srv: SandboxServer, sobject: str) -> pa.Table:
    t = srv.table(sobject)
    return t.rename_columns([snake(c) for c in t.column_names]).sort_by("id")


def assert_org(home, srv, objects=OBJECTS) -> None:
    for o in objects:
        got = table(home, o).drop_columns(["_dlt_id"])
        exp = served(srv, o)
        assert got.column_names == exp.column_names, o
        assert got.num_rows == exp.num_rows, o
        for name in exp.column_names:
            a, b = got[name].combine_chunks(), exp[name].combine_chunks()
            assert a.equals(b if a.type == b.type else b.cast(a.type)), f"{o}.{name}"


def ddl(home) -> dict[str, str]:
    rows = query(
        home, "select table_name, sql from duckdb_tables() where schema_name = 'salesforce'"
    )
    return {t: s for t, s in rows if not t.startswith("_dlt")}


def run_both(srv, tmp_path, monkeypatch, objects=OBJECTS):
    """The same first load by the direct path and by dlt's own path (two homes)."""
    homes = {}
    for direct in (True, False):
        home = tmp_path / ("direct" if direct else "dlt")
        monkeypatch.setenv("SALESOPS_HOME", str(home))
        result = extract_salesforce(objects, options=options(direct))
        assert ("direct_inserts" in result.phases) is direct
        homes[direct] = home
    return homes


def test_direct_first_load_equals_the_dlt_path(sandbox, orgs, tmp_path, monkeypatch):
    homes = run_both(sandbox, tmp_path, monkeypatch)
    direct, dlt_home = homes[True], homes[False]
    assert ddl(direct) == ddl(dlt_home)  # same columns, order, types, NOT NULLs
    for o in OBJECTS:
        assert table(direct, o).equals(table(dlt_home, o)), o
    assert_org(direct, sandbox)
    # dlt's bookkeeping is the same: every row's load id is a completed load, cursors, schema
    for home in (direct, dlt_home):
        loads = {
            r[0] for r in query(home, "select load_id from salesforce._dlt_loads where status = 0")
        }
        for o in OBJECTS:
            ids = query(home, f"select distinct _dlt_load_id from salesforce.{snake(o)}")
            assert {r[0] for r in ids} <= loads and ids, o
    states, schemas = [], []
    for home in (direct, dlt_home):
        monkeypatch.setenv("SALESOPS_HOME", str(home))
        p = pipeline()
        states.append(
            {k: v.get("cursor") for k, v in p.state["sources"]["salesforce"]["resources"].items()}
        )
        schemas.append(
            {
                t: {c: d.get("data_type") for c, d in p.default_schema.tables[t]["columns"].items()}
                for t in (snake(o) for o in OBJECTS)
            }
        )
    assert states[0] == states[1] and all(states[0].values())
    assert schemas[0] == schemas[1]

    # an incremental run merges into the direct tables exactly as into dlt's
    sandbox.set_org(orgs[1])
    for home in (direct, dlt_home):
        monkeypatch.setenv("SALESOPS_HOME", str(home))
        result = extract_salesforce(OBJECTS, options=options(False))
        assert "direct_inserts" not in result.phases  # SALESOPS_SF_DIRECT_LOAD=off: dlt merges
        assert sum(r.rows_loaded for r in result.objects.values()) > 0
        assert_org(home, sandbox)
    for o in OBJECTS:
        assert table(direct, o).equals(table(dlt_home, o)), o


def loaded_by(home, sobject: str, load_id: str) -> list[str]:
    rows = query(
        home, f"select id from salesforce.{snake(sobject)} where _dlt_load_id = '{load_id}'"
    )
    return sorted(r[0] for r in rows)


def dlt_books(home, monkeypatch, objects=OBJECTS) -> tuple[dict, dict]:
    """(cursor per resource, dlt's schema of the raw tables) of the pipeline in `home`."""
    monkeypatch.setenv("SALESOPS_HOME", str(home))
    p = pipeline()
    cursors = {k: v.get("cursor") for k, v in p.state["sources"]["salesforce"]["resources"].items()}
    return cursors, {t: p.default_schema.tables[t] for t in (snake(o) for o in objects)}


def test_direct_merge_equals_the_dlt_merge(sandbox, orgs, tmp_path, monkeypatch):
    """An incremental run merged straight into DuckDB (the default) leaves the same tables as
    dlt's own merge (SALESOPS_SF_DIRECT_LOAD=off) of the same change set: same rows, the same
    rows carrying the run's load id (a completed load in `_dlt_loads`), the rest keeping theirs;
    same cursors and dlt schema (merge hints included); both equal the org."""
    homes = run_both(sandbox, tmp_path, monkeypatch)
    sandbox.set_org(orgs[1])
    results = {}
    for direct, home in homes.items():
        monkeypatch.setenv("SALESOPS_HOME", str(home))
        before = {o: table(home, o) for o in OBJECTS}
        first_ids = {
            o: dict(query(home, f"select id, _dlt_load_id from salesforce.{snake(o)}"))
            for o in OBJECTS
        }
        res = extract_salesforce(OBJECTS, options=options(direct))
        results[direct] = res
        assert_org(home, sandbox)
        (load_id,) = res.load_ids
        done = query(home, f"select status from salesforce._dlt_loads where load_id = '{load_id}'")
        assert done == [(0,)]
        for o in OBJECTS:
            r = res.objects[o]
            changed = loaded_by(home, o, load_id)
            assert len(changed) == r.rows_loaded, o
            # every other row is the previous run's row, untouched (same load id, same values)
            now = dict(query(home, f"select id, _dlt_load_id from salesforce.{snake(o)}"))
            for i, lid in now.items():
                if i not in changed:
                    assert lid == first_ids[o][i], (o, i)
            kept = table(home, o).filter(
                pa.compute.invert(
                    pa.compute.is_in(table(home, o)["id"], pa.array(changed, pa.string()))
                )
            )
            old = before[o].filter(pa.compute.is_in(before[o]["id"], kept["id"]))
            assert kept.equals(old), o
            expected = ("direct_merge" if direct else "merge") if r.rows_loaded else r.load
            assert r.load == expected, o
    direct, dlt_path = results[True], results[False]
    assert "direct_inserts" in direct.phases and "direct_inserts" not in dlt_path.phases
    assert sum(r.rows_loaded for r in direct.objects.values()) > 0
    assert {r.load for r in direct.objects.values()} == {"direct_merge"}
    for o in OBJECTS:
        d, p = direct.objects[o], dlt_path.objects[o]
        assert (d.rows_loaded, d.rows_unchanged, d.total_rows, d.deleted_rows) == (
            p.rows_loaded,
            p.rows_unchanged,
            p.total_rows,
            p.deleted_rows,
        ), o
        assert table(homes[True], o).equals(table(homes[False], o)), o
        assert loaded_by(homes[True], o, direct.load_ids[0]) == loaded_by(
            homes[False], o, dlt_path.load_ids[0]
        ), o
    books = [dlt_books(homes[d], monkeypatch) for d in (True, False)]
    assert books[0][0] == books[1][0]  # cursors
    assert books[0][1] == books[1][1]  # dlt's table schemas, hints included
    assert books[0][1]["task"]["write_disposition"] == "merge"
    # a rerun with nothing changed merges nothing and keeps every load id
    monkeypatch.setenv("SALESOPS_HOME", str(homes[True]))
    ids_before = {
        o: query(homes[True], f"select id, _dlt_load_id from salesforce.{snake(o)} order by id")
        for o in OBJECTS
    }
    again = extract_salesforce(OBJECTS, options=options(True))
    assert sum(r.rows_loaded for r in again.objects.values()) == 0
    for o in OBJECTS:
        got = query(homes[True], f"select id, _dlt_load_id from salesforce.{snake(o)} order by id")
        assert got == ids_before[o], o


def test_failed_direct_merge_leaves_every_table_as_it_was(sandbox, orgs, tmp_path, monkeypatch):
    """A failure after some objects' change sets were merged (in the run's one merge
    transaction) leaves every table and cursor as before the run; the rerun converges."""
    home = tmp_path / "direct"
    order = ["Lead", "Opportunity", "Task"]
    extract_salesforce(order, options=options(True))
    before = {o: table(home, o) for o in order}
    cursors = dlt_books(home, monkeypatch, order)[0]
    sandbox.set_org(orgs[1])
    with pytest.raises(Exception, match="simulated crash after Task page 1"):
        extract_salesforce(order, options=crash_at("Task", 1))
    for o in order:
        assert table(home, o).equals(before[o]), o
    assert dlt_books(home, monkeypatch, order)[0] == cursors
    result = extract_salesforce(order, options=options(True))
    assert {r.load for r in result.objects.values()} == {"direct_merge"}
    assert_org(home, sandbox, order)


def crash_at(sobject: str, page: int) -> ExtractOptions:
    def hook(name: str, n: int, rows: int) -> None:
        if name == sobject and n == page:
            raise RuntimeError(f"simulated crash after {name} page {n}")

    return options(True, on_page=hook)


def test_failed_direct_first_load_leaves_nothing_then_rerun_converges(sandbox, tmp_path):
    """Objects read completely before the failure are rolled back too (one transaction,
    committed only when the last object is read): no table, no cursor; the rerun is a first
    load again and equals the org."""
    home = tmp_path / "direct"
    order = ["Lead", "Opportunity", "Task"]
    with pytest.raises(Exception, match="simulated crash after Task page 2"):
        extract_salesforce(order, options=crash_at("Task", 2))
    tables = {r[0] for r in query(home, "select table_name from duckdb_tables()")}
    assert not tables & {"lead", "opportunity", "task"}, tables
    state = pipeline().state.get("sources", {}).get("salesforce", {}).get("resources", {})
    assert not any(v.get("cursor") for v in state.values()), state
    result = extract_salesforce(order, options=options(True))
    assert "direct_inserts" in result.phases  # still a first load
    assert_org(home, sandbox, order)


def test_empty_table_with_dlt_columns_is_filled_directly_other_columns_go_through_dlt(
    sandbox, tmp_path, monkeypatch
):
    """An empty raw table with exactly dlt's columns is appended to directly; an empty one that
    lacks a planned column (a custom field configured since) goes through dlt, which adds it."""
    home = tmp_path / "direct"
    pair = ["Product2", "CurrencyType"]
    first = extract_salesforce(pair, options=options(True))
    assert {r.load for r in first.objects.values()} == {"direct"}
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("delete from salesforce.product2")
    con.execute("delete from salesforce.currency_type")
    con.close()
    cur = sandbox.table("CurrencyType")
    ranks = pa.array([f"R{i}" for i in range(cur.num_rows)], pa.string())
    sandbox.set_table("CurrencyType", cur.append_column("Rank__c", ranks))
    monkeypatch.setenv("SALESOPS_SF_EXTRA_FIELDS", "CurrencyType.Rank__c")
    second = extract_salesforce(pair, options=options(True))
    assert second.objects["Product2"].load == "direct"
    assert second.objects["CurrencyType"].load == "append"
    assert_org(home, sandbox, pair)
    assert "rank_c" in table(home, "CurrencyType").column_names
