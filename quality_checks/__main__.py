"""Validate the warehouse outside Dagster and write the HTML report.

    python -m quality_checks [--warehouse PATH] [--engine gx|sql] [--as-of ISO] [--tables ...]
                             [--incremental]

Exit code 1 when a table is below the gate (the same decision as the blocking checks). Evaluates
whole tables unless --incremental (then only the rows of new loads, as the pipeline's checks do;
raw rows edited in place without a new load id are not seen then).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from orchestration.settings import paths
from quality_checks import store
from quality_checks.checks import parse_as_of
from quality_checks.marts import discover_mart_specs
from quality_checks.rules import QualityConfig, all_raw_specs
from quality_checks.score import overall_score
from quality_checks.validate import new_run_id, validate_tables
from reports.quality_report import write_report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m quality_checks", description=__doc__)
    ap.add_argument(
        "--warehouse", type=Path, default=None, help="DuckDB file (default: under SALESOPS_HOME)"
    )
    ap.add_argument("--engine", choices=["gx", "sql"], default="gx")
    ap.add_argument("--as-of", default=None, help="reference time, ISO 8601 (default: now)")
    ap.add_argument("--tables", nargs="*", help="labels (salesforce.opportunity) or API names")
    ap.add_argument(
        "--reports", type=Path, default=None, help="reports dir (default: SALESOPS_HOME)"
    )
    ap.add_argument(
        "--incremental",
        action="store_true",
        help="validate only rows of loads not evaluated before (default: whole tables)",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    warehouse = args.warehouse or paths().warehouse
    if not Path(warehouse).exists():
        print(f"error: warehouse {warehouse} does not exist (set SALESOPS_HOME or --warehouse)")
        return 2
    with store.connect(warehouse) as con:
        picklists = store.read_picklists(con)
        marts = discover_mart_specs(con)
    config = QualityConfig(
        as_of=parse_as_of(args.as_of), picklists=picklists, incremental=args.incremental
    )
    specs = all_raw_specs(config) + marts
    if args.tables:
        wanted = set(args.tables)
        specs = [s for s in specs if {s.label, s.object, s.table} & wanted]
    results = validate_tables(warehouse, specs, config, run_id=new_run_id(), engine=args.engine)
    report = write_report(warehouse, args.reports or paths().reports)
    for r in results:
        print(
            f"{r.severity:5} {r.label:42} {r.score:8.2%}  {r.counts.failed_rows:>8,} of "
            f"{r.counts.rows:>10,} rows fail  {r.counts.quarantined_rows:>6,} quarantined"
            + (f"  <- {r.why()}" if not r.passed else "")
        )
    print(f"overall {overall_score(results):.2%} over {len(results)} tables; report: {report}")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
