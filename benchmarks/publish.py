"""Publishing the analysts' marts.duckdb: full vs row-level patch vs the floor, side by side.

    .venv/bin/python -m benchmarks.publish --warehouse HOME/warehouse.duckdb [--repeat 1]
        [--tmp DIR] [--changed-ids-from-load] [--crossover] [--verify]
        [--report-as-of 2026-11-16 [--report-only]]

The warehouse is only read (attached read-only; the shared large one is fine): its published
schemas are first copied into a private work warehouse in the temp folder (`--tmp`, default a new
temp dir; the copy is as big as the marts), which the simulated week then changes. Measured side
by side in one run, on the same machine state:

* floor: every published relation (tables, and views materialised) copied into a new DuckDB file
  in one connection (`create table ... as select * from ...`), then a checkpoint;
* full: `publish_marts(..., incremental=False)` (the same copy + bookkeeping + fsync + atomic
  rename; no fingerprints: nothing to compare with);
* first publish after a full one: diffs every table row by row once (records the fingerprints);
* no change: `publish_marts` again (hashes every warehouse row; the file is left as it is);
* one week: the work warehouse is changed like a week of Salesforce changes (below), then
  `publish_marts` patches the published file (row delta per changed table); next to it, on the
  same changed data, a full publish and the floor again.

The week: in every mart with an `opportunity_id` column, the rows of ~3 % of the opportunities
get a changed amount (`--changed-ids-from-load`: the opportunities of the warehouse's last
Salesforce load instead, i.e. the real one-week change when the warehouse has had its
incremental run), 0.3 % of the opportunities lose their rows, 1 % new ones appear (copies of
existing rows under new ids); in marts without `opportunity_id` (aggregates) 10 % of the rows
change. Views follow their tables.

`--crossover` times, for the largest table, the patch (row hashes of both sides, delta, delete,
insert) against `create table as` of the whole table at several delta shares: where the two
cross is what `PATCH_SHARE` approximates. `--verify` checks every published table against the
warehouse after the week (fingerprints of both sides, i.e. the row-hash multisets).

With ``--report-as-of`` (a weekly forecast partition present in the warehouse) it also times the
executive report's data (`reports.executive_report`) next to the export floor, and checks the
routes give the same report.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from orchestration.settings import duckdb_config
from reports.publish import publish_marts, table_fingerprint


def _relations(con: duckdb.DuckDBPyConnection, catalog: str, schema: str) -> list[tuple[str, str]]:
    return con.execute(
        "select table_name, table_type from information_schema.tables "
        "where table_catalog = ? and table_schema = ? order by table_name",
        [catalog, schema],
    ).fetchall()


def floor(warehouse: Path, out: Path, schemas: tuple[str, ...]) -> tuple[float, int]:
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    with duckdb.connect(":memory:", config=duckdb_config()) as con:
        con.execute(f"attach '{warehouse}' as src (read_only)")
        con.execute(f"attach '{out}' as dst")
        n = 0
        for schema in schemas:
            con.execute(f'create schema if not exists dst."{schema}"')
            for name, _ in _relations(con, "src", schema):
                con.execute(
                    f'create table dst."{schema}"."{name}" as select * from src."{schema}"."{name}"'
                )
                n += 1
        con.execute("checkpoint dst")
    seconds = time.perf_counter() - t0
    out.unlink()
    return seconds, n


def copy_schemas(source: Path, work: Path, schemas: tuple[str, ...]) -> None:
    """The published schemas of `source` as a private warehouse (tables copied, views kept as
    views with their SQL, so they follow the changed tables). A published marts file (it has
    `publish_info`) is read back: its `main` tables (bookkeeping excluded) land in `schemas[0]`.
    """
    with duckdb.connect(":memory:", config=duckdb_config()) as con:
        con.execute(f"attach '{source}' as src (read_only)")
        con.execute(f"attach '{work}' as dst")
        con.execute("use dst")
        published = any(n == "publish_info" for n, _ in _relations(con, "src", "main"))
        pairs = [("main", schemas[0])] if published else [(s, s) for s in schemas]
        views = []
        for schema, into in pairs:
            con.execute(f'create schema if not exists dst."{into}"')
            for name, kind in _relations(con, "src", schema):
                if name.startswith("publish_") and published:
                    continue
                if kind == "VIEW":
                    sql = con.execute(
                        "select sql from duckdb_views() where database_name = 'src' "
                        "and schema_name = ? and view_name = ?",
                        [schema, name],
                    ).fetchone()[0]
                    views.append((schema, into, name, sql))
                else:
                    con.execute(
                        f'create table dst."{into}"."{name}" as '
                        f'select * from src."{schema}"."{name}"'
                    )
        for schema, into, name, sql in views:
            try:
                con.execute(sql)
            except duckdb.Error:  # it reads schemas not copied: its rows, as a table
                con.execute(
                    f'create table dst."{into}"."{name}" as select * from src."{schema}"."{name}"'
                )
                print(f"  view {schema}.{name} reads other schemas: copied as a table")
        con.execute("checkpoint dst")


def apply_week(work: Path, schemas: tuple[str, ...], changed_ids: list[str] | None) -> dict:
    """Change the work warehouse like one week (see the module docstring). Returns counts."""
    stats = {"opportunities changed": 0, "tables changed": 0}
    with duckdb.connect(str(work), config=duckdb_config()) as con:
        if changed_ids is not None:
            con.execute("create temp table changed(opportunity_id varchar)")
            con.executemany("insert into changed values (?)", [[i] for i in changed_ids])
            picked = "opportunity_id in (select opportunity_id from changed)"
            stats["opportunities changed"] = len(changed_ids)
        else:
            picked = "hash(opportunity_id) % 100 < 3"
        catalog = con.execute("select current_database()").fetchone()[0]
        for schema in schemas:
            for name, kind in _relations(con, catalog, schema):
                if kind == "VIEW":
                    continue
                rel = f'"{schema}"."{name}"'
                cols = con.execute(f"select * from {rel} limit 0").description
                names = [c[0] for c in cols]
                numeric = [
                    c[0]
                    for c in cols
                    if str(c[1]) in ("DOUBLE", "FLOAT") or str(c[1]).startswith("DECIMAL")
                ]
                if not numeric:
                    continue
                bump = f'"{numeric[0]}" = coalesce("{numeric[0]}", 0) + 1'
                if "opportunity_id" in names:
                    con.execute(f"update {rel} set {bump} where {picked}")
                    con.execute(
                        f"delete from {rel} where hash(opportunity_id) % 1000 between 3 and 5"
                    )
                    others = ", ".join(f'"{c}"' for c in names if c != "opportunity_id")
                    con.execute(
                        f"insert into {rel} (opportunity_id, {others}) "
                        f"select opportunity_id || 'N', {others} from {rel} "
                        "where hash(opportunity_id) % 1000 between 10 and 19"
                    )
                else:
                    con.execute(f"update {rel} set {bump} where hash(rowid) % 10 = 0")
                stats["tables changed"] += 1
        con.execute("checkpoint")
    return stats


def last_load_opportunities(warehouse: Path) -> list[str] | None:
    """Ids of the opportunities the warehouse's last Salesforce load brought (the real week)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        try:
            rows = con.execute(
                "select distinct id from salesforce.opportunity where _dlt_load_id = "
                "(select max(_dlt_load_id) from salesforce.opportunity)"
            ).fetchall()
        except duckdb.Error:
            return None
    return [r[0] for r in rows]


def crossover(work: Path, tmp: Path, schemas: tuple[str, ...]) -> None:
    """Patch vs `create table as` of the largest table at several delta shares."""
    with duckdb.connect(str(work), read_only=True) as con:
        sizes = [
            (con.execute(f'select count(*) from "{s}"."{n}"').fetchone()[0], s, n)
            for s in schemas
            for n, kind in _relations(con, work.stem, s)
            if kind != "VIEW"
        ]
    rows, schema, name = max(sizes)
    print(f"\ncrossover on {schema}.{name} ({rows:,} rows); load {os.getloadavg()[0]:.1f}")
    print(f"{'delta share':>12}{'patch s':>10}{'ctas s':>10}{'patch/ctas':>12}")
    for share in (0.01, 0.05, 0.15, 0.3, 0.5):
        pub, new = tmp / "x_pub.duckdb", tmp / "x_new.duckdb"
        with duckdb.connect(":memory:", config=duckdb_config()) as con:
            con.execute(f"attach '{work}' as w (read_only)")
            con.execute(f"attach '{pub}' as p")
            # the "published" side: the table with `share` of its rows different
            con.execute(f'create table p.t as select * from w."{schema}"."{name}"')
            cols = con.execute("select * from p.t limit 0").description
            num = next(
                c[0]
                for c in cols
                if str(c[1]) in ("DOUBLE", "BIGINT", "INTEGER") or str(c[1]).startswith("DECIMAL")
            )
            con.execute(
                f'update p.t set "{num}" = coalesce("{num}", 0) + 1 '
                f"where hash(rowid) % 1000 < {int(share * 1000)}"
            )
            con.execute("checkpoint p")
            t0 = time.perf_counter()
            con.execute("create temp table ph as select rowid r, hash(x) h from p.t x")
            con.execute(
                f'create temp table wh as select rowid r, hash(x) h from w."{schema}"."{name}" x'
            )
            con.execute(
                "create temp table d as select h from (select h, 1 s from ph union all "
                "select h, -1 from wh) group by h having sum(s) <> 0"
            )
            con.execute("delete from p.t where rowid in (select r from ph semi join d using (h))")
            con.execute(
                f'insert into p.t select * from w."{schema}"."{name}" '
                "where rowid in (select r from wh semi join d using (h))"
            )
            con.execute("checkpoint p")
            patch = time.perf_counter() - t0
            t0 = time.perf_counter()
            con.execute(f"attach '{new}' as n")
            con.execute(f'create table n.t as select * from w."{schema}"."{name}"')
            con.execute("checkpoint n")
            ctas = time.perf_counter() - t0
        pub.unlink()
        new.unlink()
        print(f"{share:>12.0%}{patch:>10.2f}{ctas:>10.2f}{patch / ctas:>12.2f}")


def verify(work: Path, marts: Path, schemas: tuple[str, ...]) -> None:
    with duckdb.connect(":memory:", config=duckdb_config()) as con:
        con.execute(f"attach '{work}' as w (read_only)")
        con.execute(f"attach '{marts}' as p (read_only)")
        bad = []
        for schema in schemas:
            into = "main" if schema == marts.stem else schema
            for name, _ in _relations(con, "w", schema):
                a = table_fingerprint(con, f'w."{schema}"."{name}"')
                b = table_fingerprint(con, f'p."{into}"."{name}"')
                if a != b:
                    bad.append(name)
    print(f"verify: {'every table equals the warehouse' if not bad else f'DIFFER: {bad}'}")


def report_bench(warehouse: Path, as_of: str, repeat: int, tmp: Path) -> None:
    import pandas as pd

    from forecasts.periods import as_of_timestamp
    from forecasts.series import prepare_history
    from forecasts.store import read_history, read_ledger, read_partition
    from reports.executive_report import build_report_data, load_report_data, render_markdown

    cadence = "weekly"
    d = as_of_timestamp(as_of)
    con = duckdb.connect(str(warehouse), read_only=True, config=duckdb_config())

    def pandas_route(valid_between=None):
        history = prepare_history(read_history(con, valid_between=valid_between))
        return build_report_data(
            history,
            read_partition(con, "forecasts", cadence, as_of),
            read_ledger(con, cadence),
            read_partition(con, "backtest_accuracy", cadence, as_of),
            cadence,
            as_of,
        )

    def export_floor() -> None:
        q = f"select * from forecasts.forecasts where cadence = 'weekly' and as_of = '{d.date()}'"
        con.execute(f"copy ({q}) to '{tmp / 'f.parquet'}' (format parquet)")
        con.execute(f"copy ({q}) to '{tmp / 'f.csv'}' (header)")

    routes = {
        "floor: forecast rows to Parquet + CSV": export_floor,
        "report data: whole history in pandas (before)": pandas_route,
        "report data: history of the two as-of states": lambda: pandas_route(
            (d - pd.Timedelta(weeks=1), d)
        ),
        "report data: load_report_data (in DuckDB)": lambda: load_report_data(con, cadence, as_of),
    }
    times: dict[str, float] = {}
    outputs = {}
    for name, fn in routes.items():
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            outputs[name] = fn()
            best = min(best, time.perf_counter() - t0)
        times[name] = best
    con.close()
    reports = {render_markdown(o) for o in outputs.values() if o is not None}
    assert len(reports) == 1, "the report routes disagree"
    base = times["floor: forecast rows to Parquet + CSV"]
    print(f"\nexecutive report ({cadence}, as of {as_of}); load average {os.getloadavg()[0]:.1f}")
    print(f"{'stage':<56}{'seconds':>9}{'x floor':>9}")
    for name, secs in times.items():
        print(f"{name:<56}{secs:>9.3f}{secs / base:>9.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warehouse", type=Path, required=True)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--schemas", default="marts")
    ap.add_argument("--tmp", type=Path, default=None, help="where to write (default: a temp dir)")
    ap.add_argument("--before", type=Path, help="last week's warehouse or published marts file")
    ap.add_argument("--changed-ids-from-load", action="store_true")
    ap.add_argument("--crossover", action="store_true")
    ap.add_argument("--verify", action="store_true")
    ap.add_argument("--report-as-of", help="also time the executive report for this partition")
    ap.add_argument("--report-only", action="store_true", help="skip the publish measurements")
    args = ap.parse_args()
    source = args.warehouse.resolve()
    schemas = tuple(s.strip() for s in args.schemas.split(",") if s.strip())
    tmp = Path(tempfile.mkdtemp(prefix="salesops-publish-bench-", dir=args.tmp))
    try:
        if args.report_as_of:
            report_bench(source, args.report_as_of, args.repeat, tmp)
        if args.report_only:
            return
        before, after = tmp / "before.duckdb", tmp / "after.duckdb"
        marts, other = tmp / "marts.duckdb", tmp / "full.duckdb"
        t0 = time.perf_counter()
        copy_schemas(source, after, schemas)
        if args.before:  # last week's marts (a warehouse or a published marts file)
            copy_schemas(args.before.resolve(), before, schemas)
            week = f"the real week: {args.before} -> {source}"
        else:
            shutil.copyfile(after, before)
            changed_ids = last_load_opportunities(source) if args.changed_ids_from_load else None
            week = f"a simulated week: {apply_week(after, schemas, changed_ids)}"
        print(f"work copies in {time.perf_counter() - t0:.1f} s; {week}")
        rows: dict[str, list[float]] = {}

        def add(name: str, seconds: float) -> None:
            rows.setdefault(name, []).append(seconds)

        loads = [os.getloadavg()[0]]
        last = full = None
        for _ in range(args.repeat):
            add(
                "floor: copy every relation into a new file",
                floor(before, tmp / "f.duckdb", schemas)[0],
            )
            marts.unlink(missing_ok=True)
            full = publish_marts(before, marts, schemas, incremental=False)
            add("full publish (no previous file)", full.seconds)
            first = publish_marts(before, marts, schemas)
            assert first.mode == "incremental" and not first.rewritten, first
            add("first publish after a full one (diffs every table)", first.seconds)
            same = publish_marts(before, marts, schemas)
            assert same.mode == "unchanged", same
            add("no-change publish", same.seconds)
            add("  no change: of which hashing the warehouse rows", same.fingerprint_seconds)
            loads.append(os.getloadavg()[0])
            add("week: floor on the changed warehouse", floor(after, tmp / "f.duckdb", schemas)[0])
            other.unlink(missing_ok=True)
            week_full = publish_marts(after, other, schemas, incremental=False)
            add("week: full publish", week_full.seconds)
            last = publish_marts(after, marts, schemas)
            add("week: patch publish", last.seconds)
            add("  patch: of which hashing the warehouse rows", last.fingerprint_seconds)
            add("  patch: of which hashing published rows + deltas", last.diff_seconds)
            loads.append(os.getloadavg()[0])
        assert last is not None and full is not None
        print(
            f"\n{source}: {len(full.tables)} relations, {full.total_rows:,} rows, published "
            f"file {full.bytes / 1e6:,.0f} MB; load average {min(loads):.1f}-{max(loads):.1f}; "
            f"best of {args.repeat}"
        )
        print(
            f"week publish: mode {last.mode}{f' ({last.reason})' if last.reason else ''}; "
            f"patched {len(last.patched)} tables (-{last.rows_deleted:,} +{last.rows_inserted:,} "
            f"rows), rewritten {len(last.rewritten)}: {', '.join(last.rewritten) or '-'}; "
            f"file {last.bytes / 1e6:,.0f} MB"
        )
        with duckdb.connect(str(marts), read_only=True) as con:
            for row in con.execute(
                "select table_name, row_count, action, rows_deleted, rows_inserted "
                "from publish_tables where action <> 'kept' order by row_count desc"
            ).fetchall():
                name, count, action, deleted, inserted = row
                print(f"  {name:<40} {count:>12,} rows  {action:<9} -{deleted:,} +{inserted:,}")
        base = min(rows["floor: copy every relation into a new file"])
        print(f"\n{'stage':<56}{'seconds':>9}{'x floor':>9}")
        for name, values in rows.items():
            print(f"{name:<56}{min(values):>9.2f}{min(values) / base:>9.2f}")
        if args.verify:
            verify(after, marts, schemas)
        if args.crossover:
            crossover(after, tmp, schemas)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
