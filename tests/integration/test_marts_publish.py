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
            result = publish_marts(warehouse, marts)
            publish_seconds.append(result.seconds)
            assert result.tables["main.facts"] == SIZES[version]
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
    assert left == ["marts.duckdb", "stop", "warehouse.duckdb"]
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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["marts.duckdb", "warehouse.duckdb"]
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
