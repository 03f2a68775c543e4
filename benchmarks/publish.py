"""Publishing the analysts' marts.duckdb: full, no change, one table changed, next to the floor.

    .venv/bin/python -m benchmarks.publish --warehouse HOME/warehouse.duckdb [--repeat 2]
        [--report-as-of 2026-11-16 [--report-only]]

The warehouse is only read (attached read-only; the shared large one is fine). Every publish
writes into a temp folder. Measured side by side in one run:

* floor: every published relation (tables, and views materialised) copied into a new DuckDB file
  in one connection (`create table ... as select * from ...`), then a checkpoint;
* full: `publish_marts(..., incremental=False)` (fingerprints + the same copy + atomic rename);
* no change: `publish_marts` again on the same warehouse (fingerprints, file copy, rename);
* one table changed: the stored fingerprint of the largest table is made stale in the published
  file (and its publish record updated, as a publish would leave it), so the next publish finds
  exactly that table changed and rewrites it: the same code path as a real change, without
  writing into the warehouse.

With ``--report-as-of`` (a weekly forecast partition present in the warehouse) it also times the
executive report's data (`reports.executive_report`): the whole-history pandas route
(`read_history` + `build_report_data`), the history restricted to the two as-of states, and
`load_report_data` (in DuckDB, only the report's rows leave it), next to the export floor (the
forecast rows written to Parquet and CSV), and checks the three give the same report.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from orchestration.settings import duckdb_config
from reports.publish import (
    PUBLISH_TABLES_TABLE,
    publish_marts,
    sidecar_path,
)


def floor(warehouse: Path, out: Path, schemas: tuple[str, ...]) -> tuple[float, int]:
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    with duckdb.connect(":memory:", config=duckdb_config()) as con:
        con.execute(f"attach '{warehouse}' as src (read_only)")
        con.execute(f"attach '{out}' as dst")
        n = 0
        for schema in schemas:
            names = con.execute(
                "select table_name from information_schema.tables where table_catalog = 'src' "
                "and table_schema = ?",
                [schema],
            ).fetchall()
            con.execute(f'create schema if not exists dst."{schema}"')
            for (name,) in names:
                con.execute(
                    f'create table dst."{schema}"."{name}" as select * from src."{schema}"."{name}"'
                )
                n += 1
        con.execute("checkpoint dst")
    return time.perf_counter() - t0, n


def make_stale(marts: Path, table: str) -> None:
    """Pretend `table` changed since the last publish (see the module docstring)."""
    with duckdb.connect(str(marts)) as con:
        con.execute(
            f"update {PUBLISH_TABLES_TABLE} set fingerprint = 'stale' where table_name = ?",
            [table],
        )
        con.execute("checkpoint")
    side = sidecar_path(marts)
    record = json.loads(side.read_text())
    st = marts.stat()
    record.update(size=st.st_size, mtime_ns=st.st_mtime_ns)
    record["tables"][table] = "stale"
    side.write_text(json.dumps(record))


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

    def floor() -> None:
        q = f"select * from forecasts.forecasts where cadence = 'weekly' and as_of = '{d.date()}'"
        con.execute(f"copy ({q}) to '{tmp / 'f.parquet'}' (format parquet)")
        con.execute(f"copy ({q}) to '{tmp / 'f.csv'}' (header)")

    routes = {
        "floor: forecast rows to Parquet + CSV": floor,
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
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--schemas", default="marts")
    ap.add_argument("--tmp", type=Path, default=None, help="where to write (default: a temp dir)")
    ap.add_argument("--report-as-of", help="also time the executive report for this partition")
    ap.add_argument("--report-only", action="store_true", help="skip the publish measurements")
    args = ap.parse_args()
    warehouse = args.warehouse.resolve()
    schemas = tuple(s.strip() for s in args.schemas.split(",") if s.strip())
    tmp = Path(tempfile.mkdtemp(prefix="salesops-publish-bench-", dir=args.tmp))
    try:
        if args.report_as_of:
            report_bench(warehouse, args.report_as_of, args.repeat, tmp)
        if args.report_only:
            return
        marts = tmp / "marts.duckdb"
        rows: dict[str, list[float]] = {}
        first = None
        for _ in range(args.repeat):
            secs, n_floor = floor(warehouse, tmp / "floor.duckdb", schemas)
            rows.setdefault("floor: copy every relation into a new file", []).append(secs)
            (tmp / "floor.duckdb").unlink()
            full = publish_marts(warehouse, marts, schemas, incremental=False)
            rows.setdefault("full publish", []).append(full.seconds)
            first = first or full
            same = publish_marts(warehouse, marts, schemas)
            assert same.mode == "unchanged" and not same.rewritten, same
            rows.setdefault("no-change publish", []).append(same.seconds)
            rows.setdefault("  of which fingerprints", []).append(same.fingerprint_seconds)
            largest = max(full.tables, key=full.tables.get)
            make_stale(marts, largest)
            one = publish_marts(warehouse, marts, schemas)
            assert one.mode == "incremental" and one.rewritten == (largest,), one
            rows.setdefault(f"one table changed ({largest})", []).append(one.seconds)
        assert first is not None
        load = os.getloadavg()[0]
        print(
            f"{warehouse}: {len(first.tables)} relations ({n_floor} in the floor), "
            f"{first.total_rows:,} rows, published file {first.bytes / 1e6:,.0f} MB; "
            f"largest {largest} ({first.tables[largest]:,} rows); load average {load:.1f}; "
            f"best of {args.repeat}"
        )
        base = min(rows["floor: copy every relation into a new file"])
        print(f"\n{'stage':<56}{'seconds':>9}{'x floor':>9}")
        for name, values in rows.items():
            print(f"{name:<56}{min(values):>9.2f}{min(values) / base:>9.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
