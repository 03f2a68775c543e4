"""The summary `make demo` prints: what was loaded, how clean it is, what was forecast."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from orchestration.settings import paths


def _tables(con: duckdb.DuckDBPyConnection, schema: str) -> list[str]:
    rows = con.execute(
        "select table_name from information_schema.tables where table_schema = ? "
        "and table_name not like '\\_dlt%' escape '\\' order by table_name",
        [schema],
    ).fetchall()
    return [r[0] for r in rows]


def collect_summary(warehouse: Path | None = None) -> dict[str, Any]:
    """Read the warehouse (read-only) and the exports folder into a plain dict."""
    p = paths()
    warehouse = warehouse or p.warehouse
    out: dict[str, Any] = {
        "raw_rows": {},
        "marts": {},
        "quality": None,
        "forecasts": [],
        "exports": [],
    }
    if not warehouse.exists():
        return out
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        for schema in ("salesforce", "marketing"):
            for t in _tables(con, schema):
                out["raw_rows"][f"{schema}.{t}"] = con.execute(
                    f'select count(*) from "{schema}"."{t}"'
                ).fetchone()[0]
        for t in _tables(con, "marts"):
            out["marts"][t] = con.execute(f'select count(*) from marts."{t}"').fetchone()[0]
        if "table_scores" in _tables(con, "quality"):
            # overall score of the newest run: failing rows over checked rows, all tables
            row = con.execute(
                """
                with last_run as (
                    select run_id from quality.table_scores order by checked_at desc limit 1
                )
                select 1 - sum(failed_rows) / nullif(sum("rows"), 0), count(*),
                       count(*) filter (where not passed)
                from quality.table_scores where run_id = (select run_id from last_run)
                """
            ).fetchone()
            out["quality"] = {"score": row[0], "tables": row[1], "blocked": row[2]}
        if "forecasts" in _tables(con, "forecasts"):
            out["forecasts"] = con.execute(
                """
                select cadence, period_start, point, lo80, hi80, model
                from forecasts.forecasts
                where series_key = 'total'
                  and as_of = (select max(as_of) from forecasts.forecasts f2
                               where f2.cadence = forecasts.cadence)
                qualify row_number() over (partition by cadence order by period_start) <= 3
                order by cadence, period_start
                """
            ).fetchall()
    finally:
        con.close()
    export_root = p.exports / "forecasts"
    if export_root.exists():
        out["exports"] = sorted(str(d) for d in export_root.glob("*/*/v*") if d.is_dir())
    return out


def print_summary(result: Any, elapsed_s: float) -> None:  # noqa: T201 - CLI output
    p = paths()
    s = collect_summary()
    lines = [
        "",
        "=" * 78,
        f"salesops demo run: {'SUCCESS' if result.success else 'FAILED'} "
        f"in {elapsed_s:.0f}s (run id {result.run_id})",
        "=" * 78,
    ]
    lines.append("Raw rows loaded:")
    for name, n in s["raw_rows"].items():
        lines.append(f"  {name:<45} {n:>10,}")
    if s["marts"]:
        lines.append("Marts built (schema marts):")
        for name, n in s["marts"].items():
            lines.append(f"  {name:<45} {n:>10,}")
    q = s["quality"]
    if q and q["score"] is not None:
        verdict = "PASS" if not q["blocked"] else f"BLOCKED on {q['blocked']} table(s)"
        lines.append(
            f"Data quality: {q['score']:.2%} of rows pass across {q['tables']} tables "
            f"(gate 98% per table: {verdict})"
        )
        lines.append(f"  report: {p.reports / 'data_quality' / 'latest.html'}")
    if s["forecasts"]:
        lines.append("Next forecast values (total bookings, USD):")
        for cadence, start, point, lo80, hi80, model in s["forecasts"]:
            lines.append(
                f"  {cadence:<8} {start!s:<12} {point:>14,.0f}  "
                f"80%: [{lo80:,.0f} .. {hi80:,.0f}]  ({model})"
            )
    if s["exports"]:
        lines.append("Finance exports:")
        lines += [f"  {e}" for e in s["exports"][-4:]]
    lines += [
        "",
        "Next:",
        "  make ui        -> http://127.0.0.1:3000 (asset graph, checks, runs, schedules)",
        f"  duckdb -readonly {p.marts}   -> e.g. select * from marts.sales_velocity limit 10;",
        f"  python -c \"import duckdb; print(duckdb.connect('{p.marts}', read_only=True)"
        ".sql('select * from marts.stage_conversion limit 5'))\"",
    ]
    if not result.success:
        lines.append("The run failed or was gated: open `make ui` -> Runs for the failing step.")
    print("\n".join(lines))  # noqa: T201
