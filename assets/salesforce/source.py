"""The dlt source: one merge resource per Salesforce object, yielding typed Arrow pages.

Cursor semantics (see docs/EXTRACTION.md): each resource keeps `cursor` = the largest
SystemModstamp it has *seen* in its dlt resource state. The next run asks for
`SystemModstamp >= cursor - overlap`, so rows sharing the boundary timestamp and rows whose
transaction committed a little after its timestamp are read again; merge on Id (with
`dedup_sort` on SystemModstamp) makes those re-reads harmless. dlt commits resource state only
together with a successful extract + load, so a crash anywhere leaves the cursor where the last
committed load put it: the rerun re-reads from there and duplicates nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc

import orchestration.settings  # noqa: F401  (sets telemetry-off env vars)
from assets.salesforce.client import (
    QueryLocatorExpiredError,
    SalesforceApiError,
    SalesforceClient,
)
from assets.salesforce.convert import csv_to_arrow, records_to_arrow, rest_page_to_arrow
from assets.salesforce.fields import CURSOR_FIELD, ObjectPlan
from assets.salesforce.soql import build_count, build_select
from sandbox.schema import snake

logger = logging.getLogger("salesops.salesforce")

PageHook = Callable[[str, int, int], None]


@dataclass
class ExtractOptions:
    """Knobs of one extraction run (defaults come from `from_env`)."""

    bulk_threshold: int | None = 100_000  # rows to fetch at/above which Bulk API 2.0 is used
    batch_size: int = 2000  # REST page size (Salesforce allows 200..2000)
    bulk_max_records: int = 50_000  # rows per Bulk result page
    cursor_overlap_s: float = 300.0
    progress_every_s: float = 10.0
    on_page: PageHook | None = None  # called after each page is handed to dlt (tests, UIs)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ExtractOptions:
        import os

        env = dict(os.environ) if env is None else env
        raw = env.get("SALESOPS_SF_BULK_THRESHOLD", "100000").strip().lower()
        threshold = None if raw in ("", "off", "none", "-1") else int(raw)
        return cls(
            bulk_threshold=threshold,
            batch_size=int(env.get("SALESOPS_SF_BATCH_SIZE", 2000)),
            bulk_max_records=int(env.get("SALESOPS_SF_BULK_PAGE_ROWS", 50_000)),
            cursor_overlap_s=float(env.get("SALESOPS_SF_CURSOR_OVERLAP_SECONDS", 300)),
        )


@dataclass
class ObjectStats:
    """What one resource did in this run (read back by the Dagster layer for metadata)."""

    sobject: str
    mode: str = "rest"
    pages: int = 0
    records: int = 0
    seconds: float = 0.0
    since: str | None = None
    cursor: str | None = None
    restarts: int = 0
    fields: list[str] = field(default_factory=list)


def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.astimezone(UTC).isoformat(timespec="milliseconds")


def _parse_iso(value: str | None) -> datetime | None:
    return None if not value else datetime.fromisoformat(value).astimezone(UTC)


def _max_cursor(tbl: pa.Table, current: datetime | None) -> datetime | None:
    col = snake(CURSOR_FIELD)
    if tbl.num_rows == 0 or col not in tbl.column_names:
        return current
    top = pc.max(tbl[col]).as_py()
    if top is None:
        return current
    return top if current is None or top > current else current


def _with_row_key(tbl: pa.Table) -> pa.Table:
    """Add dlt's `_dlt_id` row key as the record Id (unique in the merged table). Supplying it
    here lets dlt import the parquet files as written instead of rewriting each one in
    normalize just to add random row keys (about 30% of a full load's time)."""
    return tbl.append_column(pa.field("_dlt_id", pa.string(), nullable=False), tbl["id"])


def object_pages(
    client: SalesforceClient,
    plan: ObjectPlan,
    options: ExtractOptions,
    stats: ObjectStats,
    log: Any = None,
) -> Iterator[pa.Table]:
    """Arrow pages of one object since its committed cursor; advances the cursor in dlt state."""
    log = log or logger
    state = dlt.current.resource_state()
    committed = _parse_iso(state.get("cursor"))
    since = None
    if committed is not None and plan.has_cursor:
        since = committed - timedelta(seconds=options.cursor_overlap_s)
    stats.since, stats.cursor, stats.fields = _iso(since), _iso(committed), list(plan.fields)
    order = (CURSOR_FIELD, "Id") if plan.has_cursor else ("Id",)
    cursor_field = CURSOR_FIELD if plan.has_cursor else None
    started = last_log = time.monotonic()

    use_bulk = False
    if options.bulk_threshold is not None:
        if options.bulk_threshold <= 0:
            use_bulk = True
        else:
            n = client.count(build_count(plan.name, cursor_field, since), plan.deletable)
            use_bulk = n >= options.bulk_threshold
            log.info(
                "%s: %d rows to fetch since %s -> %s",
                plan.name,
                n,
                _iso(since) or "the beginning",
                "Bulk API 2.0" if use_bulk else "REST",
            )
    stats.mode = "bulk" if use_bulk else "rest"
    seen = committed
    # Ids already read whose SystemModstamp equals `seen`: a restart from `seen` (>=) skips them
    boundary: set[str] = set()
    skip_at: datetime | None = None

    def pages() -> Iterator[pa.Table]:
        nonlocal since, skip_at
        if use_bulk:
            soql = build_select(plan.name, plan.fields, cursor_field, since)
            bulk_pages = client.bulk_query_pages(soql, plan.deletable, options.bulk_max_records)
            try:
                first = next(bulk_pages, None)
            except SalesforceApiError as exc:
                if exc.status not in (400, 404):  # e.g. object not supported by Bulk API 2.0
                    raise
                log.warning("%s: Bulk API 2.0 refused the job (%s); using REST", plan.name, exc)
                stats.mode = "rest"
            else:
                if first is not None:
                    yield csv_to_arrow(first, plan)
                for data in bulk_pages:
                    yield csv_to_arrow(data, plan)
                return
        while True:
            soql = build_select(plan.name, plan.fields, cursor_field, since, order)
            try:
                parsed = getattr(client, "query_pages_parsed", None)
                if parsed is not None:  # pages parsed straight to Arrow in the read-ahead thread
                    parse = partial(rest_page_to_arrow, plan=plan)
                    yield from parsed(soql, plan.deletable, parse, options.batch_size)
                else:  # a client that only gives record dicts
                    for records in client.query_pages(soql, plan.deletable, options.batch_size):
                        yield records_to_arrow(records, plan)
                return
            except QueryLocatorExpiredError:
                if stats.restarts >= 3 or not plan.has_cursor:
                    raise
                stats.restarts += 1
                # everything below the largest SystemModstamp seen has been read (ORDER BY);
                # rows at exactly that stamp that were read already are filtered out below
                since = seen if seen is not None else since
                skip_at = seen
                log.warning(
                    "%s: query locator expired after %d pages; restarting from %s",
                    plan.name,
                    stats.pages,
                    _iso(since),
                )

    emitted = False
    modstamp = snake(CURSOR_FIELD)
    for tbl in pages():
        stats.pages += 1
        if skip_at is not None and boundary and tbl.num_rows:
            again = pc.and_(
                pc.equal(tbl[modstamp], pa.scalar(skip_at, tbl.schema.field(modstamp).type)),
                pc.is_in(tbl["id"], pa.array(sorted(boundary), pa.string())),
            )
            tbl = tbl.filter(pc.invert(pc.fill_null(again, False)))
        stats.records += tbl.num_rows
        top = _max_cursor(tbl, seen)
        if plan.has_cursor and tbl.num_rows and top is not None:
            at_top = pc.equal(tbl[modstamp], pa.scalar(top, tbl.schema.field(modstamp).type))
            ids = set(tbl.filter(pc.fill_null(at_top, False))["id"].to_pylist())
            boundary = ids if top != seen else boundary | ids
        seen = top
        if tbl.num_rows:
            emitted = True
            yield _with_row_key(tbl)
        if seen is not None:
            state["cursor"] = _iso(seen)
            stats.cursor = state["cursor"]
        now = time.monotonic()
        stats.seconds = now - started
        if now - last_log >= options.progress_every_s:
            last_log = now
            log.info(
                "%s: %d pages, %d records, %.0f rows/s",
                plan.name,
                stats.pages,
                stats.records,
                stats.records / max(stats.seconds, 1e-9),
            )
        if options.on_page is not None:
            options.on_page(plan.name, stats.pages, tbl.num_rows)
    if not emitted:  # the table exists (with its columns) even if empty
        yield _with_row_key(plan.arrow_schema.empty_table())
    stats.seconds = time.monotonic() - started
    log.info(
        "%s: done via %s, %d pages, %d records in %.1fs (%.0f rows/s), cursor %s",
        plan.name,
        stats.mode,
        stats.pages,
        stats.records,
        stats.seconds,
        stats.records / max(stats.seconds, 1e-9),
        stats.cursor,
    )


def salesforce_resource(
    client: SalesforceClient,
    plan: ObjectPlan,
    options: ExtractOptions,
    stats: ObjectStats,
    log: Any = None,
    first_load: bool = False,
) -> Any:
    """A dlt resource (table snake(Object), merge on id) for one planned object.

    `first_load` (the table does not exist or is empty): plain append, which is the same result
    as a merge into nothing (one query returns each Id once; restarts skip rows already read)
    without the merge's staging table and delete pass.
    """
    columns: dict[str, dict[str, Any]] = {"id": {"nullable": False}}
    if plan.has_cursor and not first_load:
        columns[snake(CURSOR_FIELD)] = {"dedup_sort": "desc"}

    def rows() -> Iterator[pa.Table]:
        yield from object_pages(client, plan, options, stats, log)

    return dlt.resource(
        rows,
        name=plan.table_name,
        table_name=plan.table_name,
        write_disposition="append"
        if first_load
        else {"disposition": "merge", "strategy": "delete-insert"},
        primary_key="id",
        columns=columns,
    )


def salesforce_source(
    client: SalesforceClient,
    plans: list[ObjectPlan],
    options: ExtractOptions,
    stats: dict[str, ObjectStats],
    log: Any = None,
    first_load: frozenset[str] = frozenset(),
) -> Any:
    """A dlt source with one resource per planned object; `stats` is filled in as they run.

    `first_load` names the objects whose raw table is absent or empty (appended, not merged).
    """

    @dlt.source(name="salesforce", max_table_nesting=0)
    def salesforce() -> Any:
        for plan in plans:
            stats[plan.name] = ObjectStats(plan.name)
            yield salesforce_resource(
                client, plan, options, stats[plan.name], log, plan.name in first_load
            )

    return salesforce()
