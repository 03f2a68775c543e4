"""`python -m assets.marketing [--force]`: load the landing folder without Dagster.

Uses $SALESOPS_HOME (warehouse.duckdb, landing/marketing/); prints one line per file and exits
with status 1 if any file could not be loaded.
"""

import argparse
import logging
import sys

from assets.marketing.contract import KINDS
from assets.marketing.loader import load_landing
from orchestration.settings import paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assets.marketing", description=__doc__)
    parser.add_argument("--force", action="store_true", help="reload unchanged files too")
    parser.add_argument("--kind", choices=KINDS, action="append", help="only this kind")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    where = paths()
    reports = load_landing(
        where.warehouse, where.landing_marketing, args.kind or KINDS, force=args.force
    )
    failed = 0
    for report in reports.values():
        for f in report.files:
            print(
                f"{f.file}: {f.status} read={f.rows_read} loaded={f.rows_loaded} "
                f"quarantined={f.rows_quarantined}" + (f"\n  {f.error}" if f.error else "")
            )
            failed += f.error is not None
        for name in report.missing_files:
            print(f"{name}: missing from the landing folder (rows kept)")
        print(
            f"marketing.{report.kind}: {report.table_rows} rows, "
            f"{report.quarantine_rows} quarantined in total; this run: {report.quarantine_reasons}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
