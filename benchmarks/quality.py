"""Benchmark the data-quality gate: full and incremental evaluation vs the plain-SQL floor.

    .venv/bin/python -m benchmarks.quality [--rows 10000000] [--keep DIR]
    .venv/bin/python -m benchmarks.quality --incremental [--scale medium] [--engine sql|gx]
    .venv/bin/python -m benchmarks.quality --incremental --home SALESOPS_HOME

`--incremental` (the weekly run): a generated org (`--scale`, default medium) is loaded and
evaluated in full (state kept), advanced by a week (`sandbox.org.advance`) and the changes are
merged like dlt (new `_dlt_load_id`); then, side by side on copies of the same warehouse, every
Salesforce table is validated incrementally and from scratch, against two floors: the same checks
as one plain aggregate query per table over every live row (full floor) and over the rows of
the new load only (incremental floor). Results must be identical. With `--home`, the Salesforce
tables of an existing warehouse (`<home>/warehouse.duckdb`, opened read-only, never written) are
copied into a temp file; the newest load plays the week's changes (the state of a full
evaluation is told it has not seen that load).

Without `--incremental`:
Builds salesforce.opportunity (N rows, ~1 % defects), salesforce.account (N/10) and
salesforce.user (2,000) in a temp DuckDB file with SQL (seconds), then runs, each in a fresh
subprocess so peak memory (max RSS) is measured per variant:

* floor : the same checks as ONE plain DuckDB aggregate query (count checked/failed per rule and
          the failing-row union), nothing written
* sql   : our pipeline with the SQL engine (row-level pass, samples, quarantine, results)
* gx    : our pipeline with Great Expectations (default in the gate) + the SQL row-level pass

and prints wall time and peak RSS side by side with ratios to the floor.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AS_OF = dt.datetime(2026, 6, 30, tzinfo=dt.UTC)


def build(path: Path, rows: int) -> None:
    import duckdb

    from quality_checks.fixtures import raw_table_ddl

    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE SCHEMA salesforce")
        for obj in ("User", "Account", "Campaign", "Opportunity"):
            con.execute(raw_table_ddl(obj))
        accounts = max(rows // 10, 10)
        audit = (
            "TIMESTAMPTZ '2024-01-01' + to_seconds(i % 50000000), "
            "TIMESTAMPTZ '2026-06-01', TIMESTAMPTZ '2026-06-29'"
        )
        con.execute(
            "INSERT INTO salesforce.user (id, username, name, last_name, email, is_active, "
            f"created_date, last_modified_date, system_modstamp) SELECT '005' || i, 'u' || i, "
            f"'n', 'l', 'u' || i || '@x.com', true, {audit} FROM range(2000) t(i)"
        )
        con.execute(
            "INSERT INTO salesforce.account (id, name, industry, owner_id, currency_iso_code, "
            "created_date, last_modified_date, system_modstamp, is_deleted) SELECT '001' || i, "
            f"'acc', 'Software', '005' || (i % 2000), 'USD', {audit}, false "
            f"FROM range({accounts}) t(i)"
        )
        # ~1 % of rows carry one defect each (five kinds, 0.2 % each), 0.5 % deleted rows
        con.execute(
            f"""INSERT INTO salesforce.opportunity SELECT
                '006' || i AS id, 'Opp ' || i AS name,
                CASE WHEN h = 1 THEN NULL WHEN h = 2 THEN '001999999999' || i
                     ELSE '001' || (i % {accounts}) END AS account_id,
                CASE WHEN h = 3 THEN '005X99' ELSE '005' || (i % 2000) END AS owner_id,
                ['Prospecting', 'Qualification', 'Needs Analysis', 'Proposal', 'Negotiation',
                 'Closed Won', 'Closed Lost'][1 + i % 7] AS stage_name,
                CASE WHEN h = 4 THEN -100.0 ELSE (i % 100000) * 1.5 END AS amount,
                'USD' AS currency_iso_code, (i % 7) * 15.0 AS probability,
                DATE '2024-06-01' + CAST(i % 700 AS INTEGER) AS close_date,
                i % 7 >= 5 AS is_closed, i % 7 = 5 AS is_won, 'Pipeline' AS forecast_category_name,
                CASE WHEN h = 5 THEN 'Upsell (legacy)' ELSE 'New Business' END AS type,
                'Web' AS lead_source, NULL AS campaign_id, 'None' AS competitor_c,
                NULL AS loss_reason_c,
                TIMESTAMPTZ '2024-01-01' + to_seconds(i % 10000000) AS created_date,
                TIMESTAMPTZ '2026-06-01' AS last_modified_date,
                TIMESTAMPTZ '2026-06-29' AS system_modstamp, i % 200 = 7 AS is_deleted,
                'load-1' AS _dlt_load_id, CAST(i AS VARCHAR) AS _dlt_id
            FROM (SELECT i, CASE WHEN i % 100 = 13 THEN 1 + (i // 100) % 5 ELSE 0 END AS h
                  FROM range({rows}) t(i))"""
        )
    finally:
        con.close()


def floor_sql(spec) -> str:
    """The same checks as one plain DuckDB query: flags per row once, then one aggregate."""
    flags, parts, fails = [], ["count(*)"], []
    for i, r in enumerate(spec.rules):
        flags.append(f"coalesce({r.check_sql}, false) AS c{i}")
        flags.append(f"(coalesce({r.fail_sql}, false) AND coalesce({r.check_sql}, false)) AS f{i}")
        parts += [f"count_if(c{i})", f"count_if(f{i})"]
        fails.append(f"f{i}")
    parts.append(f"count_if({' OR '.join(fails)})")
    return (
        f"SELECT {', '.join(parts)} FROM (SELECT {', '.join(flags)} "
        f"FROM ({spec.source_query()}) AS src) AS flags"
    )


def run_variant(variant: str, path: str) -> dict:
    """Runs inside a fresh subprocess."""
    import resource

    from quality_checks.rules import QualityConfig, spec_for

    cfg = QualityConfig(as_of=AS_OF)
    spec = spec_for("Opportunity", cfg)
    out: dict = {"variant": variant}
    if variant == "gx":  # GX import is a fixed cost; report it apart from validation
        t = time.perf_counter()
        from quality_checks import gx_engine

        gx_engine._gx()
        out["import_s"] = time.perf_counter() - t
    t = time.perf_counter()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    if variant == "floor":
        import duckdb

        con = duckdb.connect(path)
        try:
            row = con.execute(floor_sql(spec)).fetchall()[0]
        finally:
            con.close()
        out["rows"], out["failed_rows"] = row[0], row[-1]
    else:
        from quality_checks.validate import validate_table

        r = validate_table(path, spec, cfg, run_id=f"bench-{variant}", engine=variant)
        out["rows"], out["failed_rows"], out["score"] = r.counts.rows, r.counts.failed_rows, r.score
        out["errors"] = r.errors
        out["expectations"] = len(r.rules)
    out["wall_s"] = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    out["cpu_s"] = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def floor_incremental_sql(spec, new_loads: list[str]) -> str:
    """The floor of the incremental work: the row checks over the new load's live rows."""
    loads = ", ".join("'" + x.replace("'", "''") + "'" for x in new_loads) or "NULL"
    sql = floor_sql(spec)
    return sql.replace(
        f"FROM ({spec.source_query()}) AS src",
        f"FROM ({spec.source_query()} AND {spec.load_id_sql} IN ({loads})) AS src",
    )


def _timed(fn):
    import resource

    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return out, wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def _prepare_generated(d: Path, scale: str, engine: str) -> tuple[dt.datetime, dict]:
    """Org -> warehouse, full evaluation (state), one week advanced and merged like dlt."""
    import duckdb

    from quality_checks.fixtures import merge_org_like_dlt
    from quality_checks.rules import QualityConfig, salesforce_specs
    from quality_checks.validate import validate_tables
    from sandbox.org import advance, generate, load_into_duckdb

    t = time.perf_counter()
    org = generate(scale, seed=7, end=AS_OF.date())
    load_into_duckdb(org, d / "warehouse.duckdb")
    print(
        f"org {scale}: {sum(x.num_rows for x in org.tables.values()):,} rows in "
        f"{time.perf_counter() - t:.1f}s",
        flush=True,
    )
    cfg = QualityConfig(as_of=org.as_of)
    t = time.perf_counter()
    validate_tables(d / "warehouse.duckdb", salesforce_specs(cfg), cfg, "week-1", engine)
    print(f"week 1 full evaluation (state kept): {time.perf_counter() - t:.1f}s", flush=True)
    org2 = advance(org, 7)
    con = duckdb.connect(str(d / "warehouse.duckdb"))
    written = merge_org_like_dlt(con, org2.tables, "load-week-2")
    con.close()
    print(f"week 2 merged like dlt: {sum(written.values()):,} rows changed or new", flush=True)
    return org2.as_of, written


def _prepare_home(d: Path, home: Path, engine: str) -> tuple[dt.datetime, dict]:
    """Copy the Salesforce tables of `home` (read-only) and forget its newest load in the state."""
    import json as _json

    import duckdb

    from quality_checks.rules import QualityConfig, salesforce_specs
    from quality_checks.validate import validate_tables

    src = home / "warehouse.duckdb"
    t = time.perf_counter()
    con = duckdb.connect(str(d / "warehouse.duckdb"), config={"memory_limit": "1GB"})
    con.execute(f"ATTACH '{src}' AS src (READ_ONLY)")
    con.execute("CREATE SCHEMA salesforce")
    tables = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'src' AND "
            "schema_name = 'salesforce' AND NOT starts_with(table_name, '_dlt')"
        ).fetchall()
    ]
    for tbl in tables:
        con.execute(f'CREATE TABLE salesforce."{tbl}" AS SELECT * FROM src.salesforce."{tbl}"')
    newest = con.execute("SELECT max(_dlt_load_id) FROM salesforce.opportunity").fetchall()[0][0]
    as_of = con.execute("SELECT max(system_modstamp) FROM salesforce.opportunity").fetchall()[0][0]
    con.execute("DETACH src")
    con.close()
    print(f"copied {len(tables)} tables from {src} in {time.perf_counter() - t:.1f}s", flush=True)
    as_of = as_of.astimezone(dt.UTC) + dt.timedelta(hours=1)
    cfg = QualityConfig(as_of=as_of)
    t = time.perf_counter()
    validate_tables(d / "warehouse.duckdb", salesforce_specs(cfg), cfg, "week-1", engine)
    print(f"full evaluation (state kept): {time.perf_counter() - t:.1f}s", flush=True)
    con = duckdb.connect(str(d / "warehouse.duckdb"))
    written = {}
    for label, loads in con.execute('SELECT "table", load_ids FROM quality.eval_state').fetchall():
        counts = _json.loads(loads)
        written[label] = counts.pop(newest, 0)
        # the stored checked counts include that load's rows: drop them (whole-table pass)
        con.execute(
            'UPDATE quality.eval_state SET load_ids = ?, checked = NULL WHERE "table" = ?',
            [_json.dumps(counts), label],
        )
    con.close()
    print(f"state told the newest load {newest} is new: {sum(written.values()):,} rows", flush=True)
    return as_of, written


def run_incremental(args) -> None:
    import os

    import duckdb

    from quality_checks import sql_engine
    from quality_checks.rules import QualityConfig, salesforce_specs
    from quality_checks.validate import validate_tables

    tmp = Path(tempfile.mkdtemp(prefix="salesops-bench-quality-incr-"))
    try:
        if args.home:
            as_of, _ = _prepare_home(tmp, Path(args.home), args.engine)
        else:
            as_of, _ = _prepare_generated(tmp, args.scale, args.engine)
        wh = tmp / "warehouse.duckdb"
        full_copy = tmp / "full.duckdb"
        shutil.copy(wh, full_copy)
        floor_copy = tmp / "floor.duckdb"
        shutil.copy(wh, floor_copy)
        if args.engine == "gx":
            from quality_checks import gx_engine

            gx_engine._gx()  # one-off import, not timed
        load1 = os.getloadavg()[0]
        cfg = QualityConfig(as_of=as_of)
        scratch = QualityConfig(as_of=as_of, incremental=False)
        inc, inc_s, inc_cpu = _timed(
            lambda: validate_tables(wh, salesforce_specs(cfg), cfg, "week-2", args.engine)
        )
        full, full_s, full_cpu = _timed(
            lambda: validate_tables(
                full_copy, salesforce_specs(scratch), scratch, "week-2", args.engine
            )
        )

        def floors() -> tuple[float, float, int, int]:
            con = duckdb.connect(str(floor_copy), config={"memory_limit": "1GB"})
            try:
                state = dict(
                    con.execute('SELECT "table", load_ids FROM quality.eval_state').fetchall()
                )
                tables = sql_engine.existing_tables(con)
                f_s = i_s = 0.0
                rows = new_rows = 0
                for spec in salesforce_specs(cfg):
                    cols = sql_engine.table_columns(con, spec)
                    spec, _ = sql_engine.applicable(sql_engine.row_spec(spec), cols, tables)
                    seen = json.loads(state.get(spec.label) or "{}")
                    current = [
                        r[0]
                        for r in con.execute(
                            f"SELECT DISTINCT {spec.load_id_sql} FROM {spec.qualified}"
                        ).fetchall()
                    ]
                    new = [x for x in current if x not in seen]
                    t = time.perf_counter()
                    rows += con.execute(floor_sql(spec)).fetchall()[0][0]
                    f_s += time.perf_counter() - t
                    t = time.perf_counter()
                    new_rows += con.execute(floor_incremental_sql(spec, new)).fetchall()[0][0]
                    i_s += time.perf_counter() - t
                return f_s, i_s, rows, new_rows
            finally:
                con.close()

        floor_full_s, floor_inc_s, rows, new_rows = floors()
        load2 = os.getloadavg()[0]
        mismatches = [
            a.label
            for a, b in zip(inc, full, strict=True)
            if (a.counts, a.samples, [(r.name, r.checked, r.failed) for r in a.rules])
            != (b.counts, b.samples, [(r.name, r.checked, r.failed) for r in b.rules])
        ]
        print()
        print(
            f"17 Salesforce tables, {rows:,} live rows, {new_rows:,} in the new load "
            f"(engine {args.engine}, load average {load1:.1f} -> {load2:.1f})"
        )
        print(f"{'variant':28} {'wall s':>8} {'cpu s':>8}")
        print(f"{'full (from scratch)':28} {full_s:8.2f} {full_cpu:8.2f}")
        print(f"{'incremental':28} {inc_s:8.2f} {inc_cpu:8.2f}")
        print(f"{'floor full (1 query/table)':28} {floor_full_s:8.2f}")
        print(f"{'floor incremental (new rows)':28} {floor_inc_s:8.2f}")
        print(
            f"incremental / full = {inc_s / full_s:.1%}; full / floor = "
            f"{full_s / floor_full_s:.2f}x; incremental - floor incremental = "
            f"{inc_s - floor_inc_s:.2f}s ({(inc_s - floor_inc_s) / 17:.3f}s per table)"
        )
        slow = sorted(inc, key=lambda r: -r.seconds)[:5]
        for r in slow:
            print(f"  {r.label:40} {r.seconds:6.2f}s  {r.evaluation[:110]}")
        print("identical results: " + ("yes" if not mismatches else f"NO {mismatches}"))
        if mismatches:
            raise SystemExit(1)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--incremental", action="store_true", help="the weekly incremental case")
    ap.add_argument("--scale", default="medium", help="org scale for --incremental")
    ap.add_argument("--engine", choices=["sql", "gx"], default="sql")
    ap.add_argument("--home", help="--incremental on this SALESOPS_HOME's warehouse (read-only)")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument(
        "--keep", type=Path, help="keep the DuckDB file in this directory (reused if present)"
    )
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.incremental:
        run_incremental(args)
        return
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.db)))
        return
    tmp = None if args.keep else Path(tempfile.mkdtemp(prefix="salesops-bench-quality-"))
    db = (args.keep or tmp) / "warehouse.duckdb"
    db.parent.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        if db.exists():
            print(f"reusing {db} ({db.stat().st_size / 1e6:.0f} MB)")
        else:
            build(db, args.rows)
            print(
                f"built {args.rows:,} opportunities in {time.perf_counter() - t:.1f}s "
                f"({db.stat().st_size / 1e6:.0f} MB)"
            )
        results = {}
        for variant in ("floor", "sql", "gx"):
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.quality", "--variant", variant, "--db", str(db)],
                capture_output=True,
                text=True,
                check=True,
            )
            results[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"  {variant}: {results[variant]}", flush=True)
        f = results["floor"]
        print()
        print(
            f"{'variant':8} {'wall s':>8} {'x floor':>8} {'cpu s':>8} {'x floor':>8} "
            f"{'peak MB':>8} {'x floor':>8} {'rows':>12} {'failing':>9}"
        )
        for v, r in results.items():
            print(
                f"{v:8} {r['wall_s']:8.2f} {r['wall_s'] / f['wall_s']:8.2f} "
                f"{r['cpu_s']:8.2f} {r['cpu_s'] / f['cpu_s']:8.2f} "
                f"{r['peak_rss_mb']:8.0f} {r['peak_rss_mb'] / f['peak_rss_mb']:8.2f} "
                f"{r['rows']:12,} {r['failed_rows']:9,}"
            )
        if "import_s" in results["gx"]:
            print(
                f"(gx: + {results['gx']['import_s']:.1f}s one-off Great Expectations import, "
                "not in wall s)"
            )
        assert results["sql"]["failed_rows"] == results["gx"]["failed_rows"] == f["failed_rows"]
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
