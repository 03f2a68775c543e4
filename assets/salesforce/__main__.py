"""`python -m assets.salesforce` — run the Salesforce extraction without Dagster.

    python -m assets.salesforce [Object ...] [--extra-fields Opportunity.Tier__c,...]
                                [--full-refresh] [--bulk-threshold N|off]

Credentials come from the SALESFORCE_* environment variables; the warehouse is
$SALESOPS_HOME/warehouse.duckdb (schema `salesforce`).
"""

from __future__ import annotations

import argparse
import logging
import sys

from assets.salesforce.client import SalesforceError
from assets.salesforce.fields import MissingFieldError
from assets.salesforce.load import extract_salesforce
from assets.salesforce.source import ExtractOptions


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m assets.salesforce", description=__doc__)
    ap.add_argument("objects", nargs="*", help="SObject API names (default: all)")
    ap.add_argument("--extra-fields", default=None, help="Object.Field,... to add")
    ap.add_argument("--full-refresh", action="store_true", help="drop tables + cursors first")
    ap.add_argument("--bulk-threshold", default=None, help="rows at which Bulk API 2.0 is used")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("dlt").setLevel(logging.WARNING)
    options = ExtractOptions.from_env()
    if args.bulk_threshold is not None:
        raw = args.bulk_threshold.strip().lower()
        options.bulk_threshold = None if raw in ("off", "none", "-1") else int(raw)
    try:
        result = extract_salesforce(
            args.objects or None,
            extra_fields=args.extra_fields,
            options=options,
            full_refresh=args.full_refresh,
        )
    except (SalesforceError, MissingFieldError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{'object':<24}{'api':>5}{'load':>13}{'loaded':>10}{'total':>10}{'deleted':>9}{'pages':>7}"
    )
    for r in result.objects.values():
        print(
            f"{r.sobject:<24}{r.mode:>5}{r.load:>13}{r.rows_loaded:>10,}{r.total_rows:>10,}"
            f"{r.deleted_rows:>9,}{r.pages:>7}"
        )
    print(f"done in {result.seconds:.1f}s ({result.requests} requests, {result.retries} retries)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
