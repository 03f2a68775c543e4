"""Publishing marts.duckdb while an analyst process reads it (reports/publish.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from reports.publish import publish_marts, published_schema

READER = r"""
import json, sys, time
import duckdb

import os
path, stop, mode = sys.argv[1], sys.argv[2], sys.argv[4]
sizes = json.loads(sys.argv[3])
# DuckDB shares one database instance per file within a process: a "long" reader keeps one
# connection open for its whole life, a "fresh" reader reconnects every time (like new sessions).
held = duckdb.connect(path, read_only=True) if mode == "long" else None
probe = duckdb.connect(path, read_only=True)
print(json.dumps({"ready": probe.execute("select max(version) from facts").fetchone()[0]}),
      flush=True)
if mode == "fresh":
    probe.close()
while not os.path.exists(stop):
    started = time.monotonic()
    try:
        con = held or duckdb.connect(path, read_only=True)
        v_min, v_max, n = con.execute(
            "select min(version), max(version), count(*) from facts").fetchone()
        side = con.execute("select count(*), min(version) from marts.side").fetchone()
        if held is None:
            con.close()
        print(json.dumps({"v": [v_min, v_max], "n": n, "side": list(side),
                          "ok": v_min == v_max and n == sizes[str(v_min)]
                          and side[1] == v_min and side[0] == v_min,
                          "seconds": time.monotonic() - started}), flush=True)
    except Exception as exc:  # report, never die silently
        print(json.dumps({"error": repr(exc)}), flush=True)
    time.sleep(0.01)
"""

SIZES = {1: 400_000, 2: 900_000, 3: 600_000, 4: 1_100_000}


def write_warehouse(path: Path, version: int) -> None:
    con = duckdb.connect(str(path))
    try:
        con.execute("create schema if not exists marts")
        con.execute(
            "create or replace table marts.facts as select range as id, "
            f"{version} as version, random() as x from range({SIZES[version]})"
        )
        con.execute(
            f"create or replace table marts.side as select {version} as version "
            f"from range({version})"
        )
        con.execute("create or replace view marts.facts_view as select * from marts.facts")
        con.execute("create schema if not exists scratch")
        con.execute("create or replace table scratch.not_published as select 1 as x")
    finally:
        con.close()


def test_reader_is_never_blocked_and_never_sees_a_partial_publish(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    marts = tmp_path / "marts.duckdb"
    stop = tmp_path / "stop"
    write_warehouse(warehouse, 1)
    first = publish_marts(warehouse, marts)
    assert first.tables == {
        "main.facts": SIZES[1],
        "main.facts_view": SIZES[1],
        "main.side": 1,
    }
    sizes = json.dumps({str(k): v for k, v in SIZES.items()})
    readers = {
        mode: subprocess.Popen(
            [sys.executable, "-c", READER, str(marts), str(stop), sizes, mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mode in ("long", "fresh")
    }
    outputs = {}
    try:
        for reader in readers.values():
            assert json.loads(reader.stdout.readline()) == {"ready": 1}
        publish_seconds = []
        for version in (2, 3, 4):
            write_warehouse(warehouse, version)
            # every row changes: force the copy-on-write path (readers hold the file it copies)
            result = publish_marts(warehouse, marts, rebuild_share=1.0)
            publish_seconds.append(result.seconds)
            assert result.tables["main.facts"] == SIZES[version]
            assert result.mode == "incremental"  # copy-on-write of the file readers hold
            time.sleep(0.3)
    finally:
        stop.touch()
        for mode, reader in readers.items():
            outputs[mode] = reader.communicate(timeout=60)[0]
    for mode, out in outputs.items():
        records = [json.loads(line) for line in out.splitlines() if line.strip()]
        errors = [r for r in records if "error" in r]
        assert not errors, (mode, errors[:3])
        assert len(records) > 20, mode
        assert all(r["ok"] for r in records), (mode, [r for r in records if not r["ok"]][:3])
        assert max(r["seconds"] for r in records) < 5, mode  # never waited on the publisher
        seen = {r["v"][0] for r in records}
        if mode == "fresh":
            assert {1, 4} <= seen and len(seen) >= 3, seen  # new sessions see each publish
        else:
            assert seen == {1}  # an open session keeps its consistent copy
    # nothing is left behind but the published file
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [".marts.duckdb.publish.json", "marts.duckdb", "stop", "warehouse.duckdb"]
    assert min(publish_seconds) > 0


def test_failed_publish_keeps_the_previous_copy(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    marts = tmp_path / "marts.duckdb"
    write_warehouse(warehouse, 1)
    publish_marts(warehouse, marts)
    before = marts.read_bytes()
    with pytest.raises(ValueError, match="no tables"):
        publish_marts(warehouse, marts, schemas=("marts", "missing_schema"))
    assert marts.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".marts.duckdb.publish.json",
        "marts.duckdb",
        "warehouse.duckdb",
    ]
    with pytest.raises(FileNotFoundError):
        publish_marts(tmp_path / "nope.duckdb", marts)


def test_schema_named_like_the_file_lands_in_main(tmp_path):
    assert published_schema("marts", Path("marts.duckdb")) == "main"
    assert published_schema("forecasts", Path("marts.duckdb")) == "forecasts"
    warehouse = tmp_path / "warehouse.duckdb"
    write_warehouse(warehouse, 2)
    con = duckdb.connect(str(warehouse))
    con.execute("create schema forecasts")
    con.execute("create table forecasts.forecasts as select 42 as y")
    con.close()
    result = publish_marts(warehouse, tmp_path / "marts.duckdb", schemas=("marts", "forecasts"))
    assert set(result.tables) == {
        "main.facts",
        "main.facts_view",
        "main.side",
        "forecasts.forecasts",
    }
    ro = duckdb.connect(str(tmp_path / "marts.duckdb"), read_only=True)
    try:
        # both spellings an analyst would use work (no catalog/schema ambiguity)
        assert ro.execute("select count(*) from facts").fetchone()[0] == SIZES[2]
        assert ro.execute("select count(*) from marts.facts").fetchone()[0] == SIZES[2]
        assert ro.execute("select y from forecasts.forecasts").fetchone()[0] == 42
        assert ro.execute("select tables from publish_info").fetchone()[0] == 4
        rows = ro.execute("select schema_name from information_schema.schemata").fetchall()
        schemas = {r[0] for r in rows}
        assert "scratch" not in schemas
    finally:
        ro.close()


# --- incremental (copy-on-write) publishing ---------------------------------------------------


def build_warehouse(path: Path) -> None:
    """Several marts of different shapes, a view, and a schema that is not published."""
    con = duckdb.connect(str(path))
    try:
        con.execute("create schema marts")
        con.execute(
            "create table marts.big as select range as id, range % 7 as k, "
            "'name ' || range as label, range * 0.5 as x from range(200000)"
        )
        con.execute("create table marts.small as select * from (values (1, 'a'), (2, 'b')) t(i, s)")
        con.execute(
            "create table marts.dup as select 1 as a, 'x' as b from range(3)"  # duplicate rows
        )
        con.execute("create table marts.empty (id integer, note varchar)")
        con.execute(
            "create view marts.big_by_k as select k, count(*) as n from marts.big group by k"
        )
        con.execute("create schema scratch")
        con.execute("create table scratch.hidden as select 1 as x")
    finally:
        con.close()


def physical_order(db: Path, sql: str, schema: str) -> list:
    """Rows in storage order (no ORDER BY): a copy keeps its source's order, so a published
    table whose order differs from the warehouse's was not rewritten by the last publish."""
    with duckdb.connect(str(db), read_only=True) as con:
        return [r[0] for r in con.execute(sql.format(schema=schema)).fetchall()]


def assert_published_equals_warehouse(warehouse: Path, marts: Path) -> None:
    """Every published table has exactly the rows of its warehouse relation (EXCEPT ALL both
    ways, so duplicates count), and nothing else is published."""
    with duckdb.connect() as con:
        con.execute(f"attach '{warehouse}' as w (read_only)")
        con.execute(f"attach '{marts}' as p (read_only)")
        names = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables "
                "where table_catalog = 'w' and table_schema = 'marts' order by 1"
            ).fetchall()
        ]
        published = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_catalog = 'p' "
                "and table_schema = 'main' and table_name not like 'publish_%' order by 1"
            ).fetchall()
        ]
        assert published == names
        for name in names:
            for a, b in (("w.marts", "p.main"), ("p.main", "w.marts")):
                diff = con.execute(
                    f"select count(*) from (select * from {a}.{name} except all "
                    f"select * from {b}.{name})"
                ).fetchone()[0]
                assert diff == 0, (name, a, b)
            cols = [
                con.execute(
                    "select list(column_name || ':' || data_type order by ordinal_position) "
                    "from information_schema.columns where table_catalog = ? "
                    "and table_schema = ? and table_name = ?",
                    [cat, sch, name],
                ).fetchone()[0]
                for cat, sch in (("w", "marts"), ("p", "main"))
            ]
            assert cols[0] == cols[1], name


def test_incremental_publish_rewrites_only_changed_tables(tmp_path):
    warehouse, marts = tmp_path / "warehouse.duckdb", tmp_path / "marts.duckdb"
    build_warehouse(warehouse)
    first = publish_marts(warehouse, marts)
    assert first.mode == "full" and first.reason == "no previous publish"
    assert set(first.rewritten) == set(first.tables) and len(first.tables) == 5
    assert first.fingerprint_seconds == 0  # nothing to compare with: not fingerprinted
    assert_published_equals_warehouse(warehouse, marts)
    # the next publish diffs every table row by row once and records the fingerprints
    record = publish_marts(warehouse, marts)
    assert record.mode == "incremental" and record.rewritten == () and record.patched == ()
    assert (record.rows_deleted, record.rows_inserted) == (0, 0)

    # same content, new physical order (dbt rebuilt the tables): nothing is rewritten
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "create or replace table marts.small as select * from marts.small order by i desc"
        )
        con.execute("create or replace table marts.big as select * from marts.big order by id desc")
    small_sql, big_sql = "select i from {schema}.small", "select id from {schema}.big limit 3"
    assert physical_order(warehouse, small_sql, "marts") == [2, 1]
    stamp = marts.stat().st_mtime_ns, marts.stat().st_ino
    same = publish_marts(warehouse, marts)
    assert same.mode == "unchanged" and same.rewritten == ()
    assert (marts.stat().st_mtime_ns, marts.stat().st_ino) == stamp  # the very same file
    assert physical_order(marts, small_sql, "main") == [1, 2]  # the old copy, not rewritten
    assert physical_order(marts, big_sql, "main") == [0, 1, 2]
    assert_published_equals_warehouse(warehouse, marts)

    # one value of one row of `big` changes, one duplicate row is added to `dup`
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update marts.big set label = 'changed' where id = 123456")
        con.execute("insert into marts.dup values (1, 'x')")
    changed = publish_marts(warehouse, marts)
    assert changed.mode == "incremental"
    # `big`: one row out, one in (patched in place); `dup`: its 3 identical rows become 4, so
    # all of them are in the delta (3 out, 4 in: more than PATCH_SHARE) and it is rewritten;
    # a table changed, so the view is copied whole without being hashed
    assert changed.patched == ("main.big",)
    assert changed.rewritten == ("main.big_by_k", "main.dup")
    assert (changed.rows_deleted, changed.rows_inserted) == (1, 1)
    assert physical_order(marts, big_sql, "main") == [0, 1, 2]  # patched: the old order kept
    assert physical_order(marts, small_sql, "main") == [1, 2]  # still the first copy
    assert_published_equals_warehouse(warehouse, marts)
    with duckdb.connect(str(marts), read_only=True) as con:
        assert con.execute("select label from big where id = 123456").fetchone()[0] == "changed"
        assert con.execute("select count(*) from dup").fetchone()[0] == 4
        info = con.execute("select mode, rewritten, patched, tables from publish_info").fetchone()
        assert info == ("incremental", 2, 1, 5)
        flags = {
            r[0]: r[1:]
            for r in con.execute(
                "select table_name, rewritten, action, rows_deleted, rows_inserted "
                "from publish_tables"
            ).fetchall()
        }
        assert flags["main.small"] == (False, "kept", 0, 0)
        assert flags["main.big"] == (False, "patched", 1, 1)
        assert flags["main.dup"] == (True, "rewritten", 0, 0)


def test_incremental_publish_detects_view_schema_drop_and_new_tables(tmp_path):
    warehouse, marts = tmp_path / "warehouse.duckdb", tmp_path / "marts.duckdb"
    build_warehouse(warehouse)
    publish_marts(warehouse, marts)
    with duckdb.connect(str(warehouse)) as con:
        # same values, renamed column; a view whose upstream changed; a dropped and a new table
        con.execute("create or replace table marts.small as select i as j, s from marts.small")
        con.execute("delete from marts.big where k = 3")
        con.execute("drop table marts.dup")
        con.execute("create table marts.fresh as select 42 as answer")
    result = publish_marts(warehouse, marts, rebuild_share=1.0)
    assert result.mode == "incremental"
    # new columns, new table; the view (one group gone) copied whole since tables changed
    assert set(result.rewritten) == {"main.small", "main.fresh", "main.big_by_k"}
    # a seventh of `big` deleted: patched
    assert set(result.patched) == {"main.big"}
    deleted_big = len([i for i in range(200000) if i % 7 == 3])
    assert (result.rows_deleted, result.rows_inserted) == (deleted_big, 0)
    assert "main.dup" not in result.tables
    assert_published_equals_warehouse(warehouse, marts)
    with duckdb.connect(str(warehouse)) as con:  # same values, wider type
        con.execute("create or replace table marts.fresh as select 42::bigint as answer")
    result = publish_marts(warehouse, marts)
    assert result.rewritten == ("main.big_by_k", "main.fresh")
    assert_published_equals_warehouse(warehouse, marts)


@pytest.mark.parametrize("tamper", ["sidecar", "modified", "full"])
def test_falls_back_to_a_full_rebuild(tmp_path, tamper):
    warehouse, marts = tmp_path / "warehouse.duckdb", tmp_path / "marts.duckdb"
    build_warehouse(warehouse)
    publish_marts(warehouse, marts)
    if tamper == "sidecar":  # no record of the last publish (older publisher, lost file)
        (tmp_path / ".marts.duckdb.publish.json").unlink()
        reason = "no valid publish record"
    elif tamper == "modified":  # someone wrote into the analysts' copy
        with duckdb.connect(str(marts)) as con:
            con.execute("update small set s = 'tampered'")
        reason = "changed since the last publish"
    else:
        reason = "incremental=False"
    result = publish_marts(warehouse, marts, incremental=tamper != "full")
    assert result.mode == "full" and reason in result.reason
    assert set(result.rewritten) == set(result.tables)
    assert_published_equals_warehouse(warehouse, marts)
    again = publish_marts(warehouse, marts)  # and the next publish is incremental again
    assert again.mode == "incremental" and again.rewritten == () and again.patched == ()
    assert publish_marts(warehouse, marts).mode == "unchanged"


def test_a_mostly_changed_warehouse_is_published_fresh(tmp_path):
    warehouse, marts = tmp_path / "warehouse.duckdb", tmp_path / "marts.duckdb"
    build_warehouse(warehouse)
    publish_marts(warehouse, marts)
    with duckdb.connect(str(warehouse)) as con:  # one row of `big`: patched, not a rebuild
        con.execute("update marts.big set x = x + 1 where id = 0")
    result = publish_marts(warehouse, marts)
    assert result.mode == "incremental" and result.patched == ("main.big",)
    assert_published_equals_warehouse(warehouse, marts)
    with duckdb.connect(str(warehouse)) as con:  # 5/7 of `big` (nearly all the rows) change
        con.execute("update marts.big set x = x + 1 where k < 5")
    result = publish_marts(warehouse, marts)
    assert result.mode == "full" and "rows to write" in result.reason
    assert set(result.rewritten) == set(result.tables)
    assert result.fingerprint_seconds > 0  # measured by the diff that chose the rebuild
    assert_published_equals_warehouse(warehouse, marts)
    with duckdb.connect(str(warehouse)) as con:  # a small change is patched in
        con.execute("update marts.small set s = 'z' where i = 1")
    result = publish_marts(warehouse, marts)
    # `small` has 2 rows: its one-row delta is more than PATCH_SHARE of it, so rewritten (and
    # the view with it, unhashed, as a table changed)
    assert result.mode == "incremental"
    assert result.rewritten == ("main.big_by_k", "main.small")
    assert result.patched == ()
    assert_published_equals_warehouse(warehouse, marts)
