"""Row-level patch publishing of marts.duckdb (reports/publish.py): weekly deltas of inserted,
deleted, updated and duplicated rows, schema changes, readers, and bounded file growth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb

from reports.publish import PATCH_SHARE, publish_marts

N = 60_000  # rows of the "big" mart


def build(path: Path) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("create schema marts")
        con.execute(
            f"create table marts.deals as select range as id, 'opp ' || (range // 8) as opp, "
            "(range % 5)::integer as stage, range * 1.25 as amount, "
            "case when range % 11 = 0 then null else date '2026-01-01' + (range % 300)::integer "
            f"end as close_date from range({N})"
        )
        # exact duplicate rows (a multiset table) and columns named like the SQL the publish
        # writes: `t` and the alias are plain columns here, `rowid` hides the row addresses
        con.execute(
            "create table marts.touches as select range % 500 as person, 'email' as t, "
            "(range % 3)::integer as __publish_row from range(6000)"
        )
        con.execute(
            "create table marts.odd as select range as rowid, range % 2 as flag from range(300)"
        )
        con.execute(
            "create view marts.deals_by_stage as "
            "select stage, count(*) as n, sum(amount) as amount from marts.deals group by stage"
        )


def assert_same(warehouse: Path, marts: Path) -> None:
    """Every published table equals its warehouse relation: EXCEPT ALL both ways, row counts,
    column names and types; nothing else is published."""
    with duckdb.connect() as con:
        con.execute(f"attach '{warehouse}' as w (read_only)")
        con.execute(f"attach '{marts}' as p (read_only)")

        def names(cat: str, schema: str) -> list[str]:
            return [
                r[0]
                for r in con.execute(
                    "select table_name from information_schema.tables where table_catalog = ? "
                    "and table_schema = ? and table_name not like 'publish_%' order by 1",
                    [cat, schema],
                ).fetchall()
            ]

        assert names("w", "marts") == names("p", "main")
        for name in names("w", "marts"):
            w, p = f"w.marts.{name}", f"p.main.{name}"
            for a, b in ((w, p), (p, w)):
                extra = con.execute(
                    f"select count(*) from (from {a} except all from {b})"
                ).fetchone()[0]
                assert extra == 0, (name, a, b)
            counts = [con.execute(f"select count(*) from {x}").fetchone()[0] for x in (w, p)]
            assert counts[0] == counts[1], name
            cols = [con.execute(f"select * from {x} limit 0").description for x in (w, p)]
            assert [(c[0], str(c[1])) for c in cols[0]] == [(c[0], str(c[1])) for c in cols[1]]


def first_publish(tmp_path: Path) -> tuple[Path, Path]:
    warehouse, marts = tmp_path / "warehouse.duckdb", tmp_path / "marts.duckdb"
    build(warehouse)
    assert publish_marts(warehouse, marts).mode == "full"
    assert publish_marts(warehouse, marts).mode == "incremental"  # records the fingerprints
    return warehouse, marts


def test_weekly_deltas_are_patched_exactly(tmp_path):
    warehouse, marts = first_publish(tmp_path)

    # week 1: 40 rows updated, 25 deleted, 30 inserted (10 of them copies of existing rows)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update marts.deals set amount = amount + 1 where id between 1000 and 1039")
        con.execute("delete from marts.deals where id between 5000 and 5024")
        con.execute(
            f"insert into marts.deals select {N} + range, 'new', 1, 10.0, null from range(20)"
        )
        con.execute("insert into marts.deals select * from marts.deals where id between 7 and 16")
    result = publish_marts(warehouse, marts)
    assert result.mode == "incremental" and result.patched == ("main.deals",)
    # a table changed: the view is copied whole without being hashed
    assert result.rewritten == ("main.deals_by_stage",) and result.hashed_rows > 0
    # planted: -40 updated -25 deleted, +40 updated +20 new; ids 7..16 were each published
    # once and now count 2 rows: their hashes are in the delta, 1 row out and 2 in each
    assert (result.rows_deleted, result.rows_inserted) == (40 + 25 + 10, 40 + 20 + 20)
    assert_same(warehouse, marts)

    # week 2: one copy of a duplicated row removed (2 -> 1), a swap of two rows' values (the
    # multiset of values per column is unchanged, the rows are not), a value set to NULL, and
    # the duplicates in `touches` (each row there exists 4 times) change count: 4 -> 3 and 4 -> 5
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "create or replace table marts.deals as select * exclude (n) from ("
            "select *, row_number() over (partition by id) as n from marts.deals) "
            "where not (id = 7 and n = 2)"
        )
        con.execute(
            "update marts.deals set amount = case id when 200 then 401 * 1.25 "
            "else 200 * 1.25 end where id in (200, 401)"
        )
        con.execute("update marts.deals set close_date = null where id = 2")
        con.execute(
            "create or replace table marts.touches as select * exclude (n) from ("
            "select *, row_number() over (partition by person, t, __publish_row) as n "
            "from marts.touches) where not (person = 1 and __publish_row = 1 and n = 1)"
        )
        con.execute("insert into marts.touches values (2, 'email', 2)")
    result = publish_marts(warehouse, marts)
    assert result.mode == "incremental" and result.rewritten == ("main.deals_by_stage",)
    assert set(result.patched) == {"main.deals", "main.touches"}
    with duckdb.connect(str(marts), read_only=True) as con:
        per_table = dict(
            (r[0], r[1:])
            for r in con.execute(
                "select table_name, action, rows_deleted, rows_inserted from publish_tables"
            ).fetchall()
        )
    # deals: id 7 (2 -> 1 copies: 2 out, 1 in), ids 200/401 swapped (2 out, 2 in), id 2
    assert per_table["main.deals"] == ("patched", 2 + 2 + 1, 1 + 2 + 1)
    # touches: (1, 'email', 1) 4 -> 3 copies and (2, 'email', 2) 4 -> 5 copies
    assert per_table["main.touches"] == ("patched", 4 + 4, 3 + 5)
    assert per_table["main.deals_by_stage"] == ("rewritten", 0, 0)  # a table changed
    assert per_table["main.odd"] == ("kept", 0, 0)
    assert_same(warehouse, marts)

    # week 3: a table with a column named rowid cannot be patched by row address: rewritten
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update marts.odd set flag = 1 - flag where rowid = 5")
    result = publish_marts(warehouse, marts)
    assert result.rewritten == ("main.deals_by_stage", "main.odd") and result.patched == ()
    assert_same(warehouse, marts)
    # the view was copied without its fingerprint: the next publish diffs it (no row differs),
    # writes a file recording it, and the one after finds everything unchanged
    again = publish_marts(warehouse, marts)
    assert (again.mode, again.rewritten, again.patched) == ("incremental", (), ())
    assert publish_marts(warehouse, marts).mode == "unchanged"


def test_a_view_changed_alone_is_diffed_and_patched_by_hash(tmp_path):
    """Every published table unchanged but a view over an unpublished table changed: the view
    is hashed, diffed and its changed rows patched (picked by hash: a view has no rowid)."""
    warehouse, marts = tmp_path / "warehouse.duckdb", tmp_path / "marts.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema marts")
        con.execute("create schema raw")
        con.execute(
            "create table raw.events as select range as id, range % 7 as k from range(5000)"
        )
        con.execute("create table marts.keep as select range as id from range(100)")
        con.execute("create view marts.events as select id, k, id * 2 as twice from raw.events")
    assert publish_marts(warehouse, marts).mode == "full"
    assert publish_marts(warehouse, marts).mode == "incremental"  # records the fingerprints
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update raw.events set k = k + 100 where id < 30")
    result = publish_marts(warehouse, marts)
    assert result.mode == "incremental" and result.patched == ("main.events",)
    assert (result.rows_deleted, result.rows_inserted) == (30, 30)
    assert_same(warehouse, marts)
    assert publish_marts(warehouse, marts).mode == "unchanged"


def test_schema_changes_and_big_deltas_rewrite_the_table(tmp_path):
    warehouse, marts = first_publish(tmp_path)
    with duckdb.connect(str(warehouse)) as con:
        # a retyped column (same values; the view's column follows), an added column
        con.execute("alter table marts.deals alter stage type bigint")
        con.execute("alter table marts.touches add column channel varchar default 'web'")
    # rewriting `deals` is most of the rows: allow the copy-on-write path anyway
    result = publish_marts(warehouse, marts, rebuild_share=1.0)
    assert result.mode == "incremental"
    assert set(result.rewritten) == {"main.deals", "main.touches", "main.deals_by_stage"}
    assert result.patched == ()
    assert_same(warehouse, marts)
    with duckdb.connect(str(warehouse)) as con:  # 200 of 300 rows: delta share 2/3
        con.execute("create or replace table marts.plain as select range as i from range(300)")
    publish_marts(warehouse, marts)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update marts.plain set i = i + 1000 where i < 200")
    result = publish_marts(warehouse, marts)
    assert PATCH_SHARE < 400 / 600
    assert result.rewritten == ("main.deals_by_stage", "main.plain")
    assert_same(warehouse, marts)


READER = r"""
import json, sys
import duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
q = "select count(*), sum(amount)::double, max(id) from deals"
print(json.dumps(con.execute(q).fetchone()), flush=True)
sys.stdin.readline()  # the publish happens here
print(json.dumps(con.execute(q).fetchone()), flush=True)
"""


def test_a_reader_opened_before_a_patch_keeps_the_old_content(tmp_path):
    warehouse, marts = first_publish(tmp_path)
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(marts)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    before = json.loads(reader.stdout.readline())
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update marts.deals set amount = amount + 100 where id < 50")
        con.execute(f"insert into marts.deals values ({N}, 'late', 2, 5.0, null)")
        expected_new = con.execute(
            "select count(*), sum(amount)::double, max(id) from marts.deals"
        ).fetchone()
    result = publish_marts(warehouse, marts)
    assert result.patched and "main.deals" in result.patched
    out, _ = reader.communicate("go\n", timeout=60)
    (held,) = (json.loads(line) for line in out.splitlines())
    assert held == before  # the open session still reads the file it opened
    with duckdb.connect(str(marts), read_only=True) as con:  # a new session sees the patch
        fresh = con.execute("select count(*), sum(amount)::double, max(id) from deals").fetchone()
    assert before[0] == N and before[2] == N - 1
    assert fresh[0] == expected_new[0] and fresh[2] == expected_new[2] == N
    assert abs(fresh[1] - expected_new[1]) < 1e-6 * abs(expected_new[1])
    assert reader.returncode == 0


def test_repeated_patches_keep_the_file_bounded(tmp_path):
    warehouse, marts = first_publish(tmp_path)
    floor = tmp_path / "floor.duckdb"
    sizes, modes = [], []
    for week in range(12):
        with duckdb.connect(str(warehouse)) as con:  # ~6 % of the rows change every week
            con.execute(
                "update marts.deals set amount = amount + 1, stage = (stage + 1) % 5 "
                f"where (id + {week}) % 17 = 0"
            )
        result = publish_marts(warehouse, marts)
        modes.append((result.mode, result.reason))
        assert result.mode == "full" or result.patched == ("main.deals",)
        sizes.append(marts.stat().st_size)
    assert_same(warehouse, marts)
    floor.unlink(missing_ok=True)
    with duckdb.connect() as con:  # the same content written once into a fresh file
        con.execute(f"attach '{warehouse}' as w (read_only)")
        con.execute(f"attach '{floor}' as f")
        for (name,) in con.execute(
            "select table_name from information_schema.tables "
            "where table_catalog = 'w' and table_schema = 'marts'"
        ).fetchall():
            con.execute(f"create table f.main.{name} as from w.marts.{name}")
    fresh = floor.stat().st_size
    # patches reuse freed blocks, and more free than used space triggers a compacting rebuild
    assert max(sizes) <= 3 * fresh, (sizes, fresh)
    assert sum(m == "incremental" for m, _ in modes) >= 6, modes
    assert all(m == "incremental" or "compaction" in r for m, r in modes), modes


def test_free_space_over_live_data_compacts(tmp_path):
    warehouse, marts = tmp_path / "warehouse.duckdb", tmp_path / "marts.duckdb"
    build(warehouse)
    with duckdb.connect(str(warehouse)) as con:  # most of the file's blocks (incompressible)
        con.execute("create table marts.bulk as select hash(range) as h from range(1500000)")
    publish_marts(warehouse, marts)
    with duckdb.connect(str(warehouse)) as con:  # most of the file's data goes away
        con.execute("delete from marts.bulk where h % 20 <> 0")
    # `bulk` is rewritten in the copy (its delta is most of it): its old blocks become free,
    # more than the live data, so the patched copy is dropped for a compacted fresh file
    shrunk = publish_marts(warehouse, marts, rebuild_share=1.0)
    assert shrunk.mode == "full" and "compaction" in shrunk.reason, shrunk
    assert_same(warehouse, marts)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update marts.touches set t = 'web' where person = 3")
    result = publish_marts(warehouse, marts)
    assert result.mode == "incremental" and result.patched == ("main.touches",)
    assert_same(warehouse, marts)
    with duckdb.connect() as con:
        con.execute(f"attach '{marts}' as p (read_only)")
        used, free = con.execute(
            "select used_blocks, free_blocks from pragma_database_size() where database_name = 'p'"
        ).fetchone()
    assert free <= used
