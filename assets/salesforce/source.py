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
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.storages.load_package import load_package_state
from dlt.extract.decorators import get_source_schema

import orchestration.settings  # noqa: F401  (sets telemetry-off env vars)
from assets.salesforce.client import (
    QueryLocatorExpiredError,
    SalesforceApiError,
    SalesforceClient,
)
from assets.salesforce.convert import csv_to_arrow, records_to_arrow, rest_page_to_arrow
from assets.salesforce.direct import MAY_EXIST, DirectLoader
from assets.salesforce.fields import CURSOR_FIELD, ObjectPlan
from assets.salesforce.soql import build_count, build_select
from sandbox.schema import snake

logger = logging.getLogger("salesops.salesforce")

PageHook = Callable[[str, int, int], None]
# (plan, since) -> Arrow table (id, system_modstamp) of the rows the warehouse already holds with
# system_modstamp >= since (None if it could not be read): a re-read row found there unchanged
# (same Id, same stamp) is skipped
KnownRows = Callable[[ObjectPlan, datetime], pa.Table | None]


@dataclass
class ExtractOptions:
    """Knobs of one extraction run (defaults come from `from_env`)."""

    bulk_threshold: int | None = 100_000  # rows to fetch at/above which Bulk API 2.0 is used
    batch_size: int = 2000  # REST page size (Salesforce allows 200..2000)
    bulk_max_records: int = 50_000  # rows per Bulk result page
    cursor_overlap_s: float = 300.0
    progress_every_s: float = 10.0
    # first loads appended straight into DuckDB beside the fetch (assets/salesforce/direct.py)
    direct_load: bool = True
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
            direct_load=env.get("SALESOPS_SF_DIRECT_LOAD", "on").strip().lower()
            not in ("off", "0", "false", "no"),
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
    skipped: int = 0  # re-read rows (cursor overlap) already in the warehouse unchanged
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


def _row_keys(ids: pa.Array | pa.ChunkedArray, stamps: pa.Array | pa.ChunkedArray) -> pa.Array:
    """`id|microseconds` keys of (Id, SystemModstamp) pairs (one record version each)."""
    if stamps.type.unit != "us":
        stamps = pc.cast(stamps, pa.timestamp("us", tz=stamps.type.tz))
    micros = pc.cast(stamps, pa.int64())
    return pc.binary_join_element_wise(ids, pc.cast(micros, pa.string()), "|")


def _drop_known(tbl: pa.Table, known: pa.Array, below: datetime) -> pa.Table:
    """Rows of `tbl` minus those whose (id, system_modstamp) is in `known`; only rows stamped
    at or below `below` (the committed cursor) can be known, the rest are kept as they are."""
    col = snake(CURSOR_FIELD)
    maybe = pc.fill_null(
        pc.less_equal(tbl[col], pa.scalar(below, tbl.schema.field(col).type)), False
    )
    if not pc.any(maybe).as_py():
        return tbl
    seen = pc.and_(maybe, pc.is_in(_row_keys(tbl["id"], tbl[col]), value_set=known))
    return tbl.filter(pc.invert(pc.fill_null(seen, False)))


_TOTAL_SIZE = re.compile(rb'"totalSize"\s*:\s*(\d+)')


def _rest_page_counted(data: bytes, plan: ObjectPlan, totals: list[int]) -> Any:
    """`rest_page_to_arrow`, noting the query's totalSize (sent on every page, first in the
    body) in `totals` once."""
    if not totals:
        m = _TOTAL_SIZE.search(data, 0, 4096)
        totals.append(int(m.group(1)) if m else -1)
    return rest_page_to_arrow(data, plan)


def _may_exist(tbl: pa.Table, since: datetime, stored: pa.Array | None) -> pa.Array:
    """Per row: may the table already hold its Id? False only when it provably cannot: the
    record was created at or after `since` and its Id is not among `stored`, the Ids of every
    stored row stamped or created at or after `since` (`load.known_rows_lookup`; CreatedDate
    never changes, so a stored version of the record would be among them). Such rows need no
    delete before their insert: a change set of new records only (history, line items) merges
    without reading the table's Id column."""
    created = "created_date"
    if stored is None or created not in tbl.column_names:
        return pa.array([True] * tbl.num_rows, pa.bool_())
    new = pc.and_(
        pc.greater_equal(tbl[created], pa.scalar(since, tbl.schema.field(created).type)),
        pc.invert(pc.is_in(tbl["id"], value_set=stored)),
    )
    return pc.invert(pc.fill_null(new, False)).combine_chunks()


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
    known_rows: KnownRows | None = None,
    ensure_table: bool = True,
    mark_new: bool = False,
) -> Iterator[pa.Table]:
    """Arrow pages of one object since its committed cursor; advances the cursor in dlt state.

    `known_rows` (incremental runs): re-read rows the warehouse already holds unchanged are
    dropped, so an object with no change yields nothing and dlt makes no load job for it (its
    cursor stays). `ensure_table`: yield an empty typed table when nothing else was yielded,
    so a missing table (or a new column) is created even without rows. `mark_new` (direct
    merges): pages carry a `MAY_EXIST` column (see `_may_exist`).
    """
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
    # incremental runs skip the COUNT() round trip: the first REST page says totalSize, and
    # only a change set at/above the threshold (rare) switches to Bulk API 2.0
    probe = False
    threshold = options.bulk_threshold
    if threshold is not None:
        if threshold <= 0:
            use_bulk = True
        elif since is not None and getattr(client, "query_pages_parsed", None) is not None:
            probe = True
        else:
            n = client.count(build_count(plan.name, cursor_field, since), plan.deletable)
            use_bulk = n >= threshold
            log.info(
                "%s: %d rows to fetch since %s -> %s",
                plan.name,
                n,
                _iso(since) or "the beginning",
                "Bulk API 2.0" if use_bulk else "REST",
            )
    stats.mode = "bulk" if use_bulk else "rest"
    known: pa.Array | None = None
    stored: pa.Array | None = None  # Ids of the stored rows stamped >= lookup_since
    lookup_since = since
    if known_rows is not None and since is not None and committed is not None:
        got = known_rows(plan, since)
        if got is not None:
            known = _row_keys(got["id"], got[snake(CURSOR_FIELD)]).combine_chunks()
            stored = got["id"].combine_chunks()
    seen = committed
    # Ids already read whose SystemModstamp equals `seen`: a restart from `seen` (>=) skips them
    boundary: set[str] = set()
    skip_at: datetime | None = None

    def bulk() -> Iterator[pa.Table]:
        """Bulk API 2.0 pages; returns False (nothing yielded) if the job is refused."""
        soql = build_select(plan.name, plan.fields, cursor_field, since)
        # CSV pages are parsed to typed Arrow in the client's read-ahead thread
        bulk_pages = client.bulk_query_pages(
            soql, plan.deletable, options.bulk_max_records, parse=partial(csv_to_arrow, plan=plan)
        )
        try:
            first = next(bulk_pages, None)
        except SalesforceApiError as exc:
            if exc.status not in (400, 404):  # e.g. object not supported by Bulk API 2.0
                raise
            log.warning("%s: Bulk API 2.0 refused the job (%s); using REST", plan.name, exc)
            stats.mode = "rest"
            return False
        stats.mode = "bulk"
        if first is not None:
            yield first
        yield from bulk_pages
        return True

    def pages() -> Iterator[pa.Table]:
        nonlocal since, skip_at, probe
        if use_bulk and (yield from bulk()):
            return
        while True:
            soql = build_select(plan.name, plan.fields, cursor_field, since, order)
            try:
                parsed = getattr(client, "query_pages_parsed", None)
                if parsed is None:  # a client that only gives record dicts
                    for records in client.query_pages(soql, plan.deletable, options.batch_size):
                        yield records_to_arrow(records, plan)
                    return
                # pages parsed straight to Arrow in the read-ahead thread
                totals: list[int] = []
                parse = partial(_rest_page_counted, plan=plan, totals=totals)
                rest = parsed(soql, plan.deletable, parse, options.batch_size)
                for page in rest:
                    if probe:
                        probe = False
                        n = totals[0] if totals else -1
                        to_bulk = threshold is not None and n >= threshold
                        log.info(
                            "%s: %d rows to fetch since %s -> %s",
                            plan.name,
                            n,
                            _iso(since),
                            "Bulk API 2.0" if to_bulk else "REST",
                        )
                        if to_bulk:
                            rest.close()  # this page is dropped: Bulk reads everything again
                            if (yield from bulk()):
                                return
                            break  # Bulk refused: the REST query again, from its first page
                    yield page
                else:
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
        if known is not None and committed is not None and tbl.num_rows:
            kept = _drop_known(tbl, known, committed)
            stats.skipped += tbl.num_rows - kept.num_rows
            tbl = kept
        stats.records += tbl.num_rows
        top = _max_cursor(tbl, seen)
        if plan.has_cursor and tbl.num_rows and top is not None:
            at_top = pc.equal(tbl[modstamp], pa.scalar(top, tbl.schema.field(modstamp).type))
            ids = set(tbl.filter(pc.fill_null(at_top, False))["id"].to_pylist())
            boundary = ids if top != seen else boundary | ids
        seen = top
        if tbl.num_rows:
            emitted = True
            out = _with_row_key(tbl)
            if mark_new and lookup_since is not None:
                flags = _may_exist(tbl, lookup_since, stored)
                out = out.append_column(pa.field(MAY_EXIST, pa.bool_()), flags)
            yield out
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
    if not emitted and ensure_table:  # the table exists (with its columns) even if empty
        yield _with_row_key(plan.arrow_schema.empty_table())
    stats.seconds = time.monotonic() - started
    log.info(
        "%s: done via %s, %d pages, %d records (+%d unchanged re-read) in %.1fs (%.0f rows/s), "
        "cursor %s",
        plan.name,
        stats.mode,
        stats.pages,
        stats.records,
        stats.skipped,
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
    known_rows: KnownRows | None = None,
    ensure_table: bool = True,
    direct: DirectLoader | None = None,
    on_done: Callable[[], None] | None = None,
) -> Any:
    """A dlt resource (table snake(Object), merge on id) for one planned object.

    `first_load` (the table does not exist or is empty): plain append, which is the same result
    as a merge into nothing (one query returns each Id once; restarts skip rows already read)
    without the merge's staging table and delete pass. `direct`: the pages go to that loader,
    straight into DuckDB (appended for a first load, else merged on Id as dlt would); dlt gets
    the object's empty typed table (first load) or nothing (merge, whose table hints are put in
    dlt's schema as dlt would), so its schema, load package and state are as on the dlt path.
    `on_done` is called once the object's pages are all read (still inside dlt's extract
    step).
    """
    columns: dict[str, dict[str, Any]] = {"id": {"nullable": False}}
    if plan.has_cursor and not first_load:
        columns[snake(CURSOR_FIELD)] = {"dedup_sort": "desc"}
    resource: Any = None

    def rows() -> Iterator[pa.Table]:
        if direct is None:
            yield from object_pages(
                client, plan, options, stats, log, None if first_load else known_rows, ensure_table
            )
        elif first_load:
            load_id = load_package_state()["load_id"]
            for page in object_pages(client, plan, options, stats, log, None, False):
                direct.put(plan, page, load_id)
            direct.finish(plan, load_id)
            # dlt gets the empty typed table: schema, load package, state as on its own path
            yield _with_row_key(plan.arrow_schema.empty_table())
        else:  # merged directly: dlt gets no rows (no staging table, file or load job)
            load_id = load_package_state()["load_id"]
            for page in object_pages(client, plan, options, stats, log, known_rows, False, True):
                direct.put(plan, page, load_id)
            direct.finish(plan, load_id)
            if stats.records:
                # the table hints dlt records when it merges rows (write disposition merge,
                # delete-insert, dedup_sort), so dlt's schema is the same as on its own path
                get_source_schema().update_table(
                    resource.compute_table_schema(),
                    normalize_identifiers=True,
                    merge_compound_props=False,
                )
        if on_done is not None:
            on_done()

    resource = dlt.resource(
        rows,
        name=plan.table_name,
        table_name=plan.table_name,
        write_disposition="append"
        if first_load
        else {"disposition": "merge", "strategy": "delete-insert"},
        primary_key="id",
        columns=columns,
    )
    return resource


def salesforce_source(
    client: SalesforceClient,
    plans: list[ObjectPlan],
    options: ExtractOptions,
    stats: dict[str, ObjectStats],
    log: Any = None,
    first_load: frozenset[str] = frozenset(),
    known_rows: KnownRows | None = None,
    ensure_table: frozenset[str] | None = None,
    direct: DirectLoader | None = None,
    direct_objects: frozenset[str] = frozenset(),
) -> Any:
    """A dlt source with one resource per planned object; `stats` is filled in as they run.

    `first_load` names the objects whose raw table is absent or empty (appended, not merged).
    `known_rows` looks up what the warehouse holds (see `object_pages`); `ensure_table` names
    the objects that must yield a table even without rows (default: all). `direct_objects` are
    written by `direct`: first loads appended (one transaction per object), the others merged
    on Id (one transaction for all); complete once the last object's pages are read: inside
    dlt's extract step, before dlt saves any cursor (a failure before undoes them:
    `DirectLoader.close`).
    """
    if direct_objects and direct is None:
        raise ValueError("direct loads need a DirectLoader")
    remaining = [len(plans)]

    def done() -> None:
        remaining[0] -= 1
        if remaining[0] == 0 and direct is not None:
            direct.commit()

    @dlt.source(name="salesforce", max_table_nesting=0)
    def salesforce() -> Any:
        for plan in plans:
            stats[plan.name] = ObjectStats(plan.name)
            yield salesforce_resource(
                client,
                plan,
                options,
                stats[plan.name],
                log,
                plan.name in first_load,
                known_rows,
                ensure_table is None or plan.name in ensure_table,
                direct if plan.name in direct_objects else None,
                done,
            )

    return salesforce()
