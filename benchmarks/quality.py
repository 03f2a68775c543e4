"""Benchmark: validate a synthetic 10M-row Opportunity table, ours vs the plain-SQL floor.

    .venv/bin/python -m benchmarks.quality [--rows 10000000] [--keep DIR]

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument(
        "--keep", type=Path, help="keep the DuckDB file in this directory (reused if present)"
    )
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    args = ap.parse_args()
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
