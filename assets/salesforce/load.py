"""Run the Salesforce dlt pipeline into the DuckDB warehouse and report what happened.

`extract_salesforce()` is the one entry point (the Dagster assets, the benchmark and the tests all
call it): log in, `describe` every selected object and check required + configured fields, then
run one dlt pipeline (`salesforce`, dataset `salesforce`, DuckDB at paths().warehouse, state
under paths().dlt_pipelines) with merge on Id. A load package left behind by an interrupted run
is finished first (dlt would otherwise only load it and skip extraction).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pyarrow as pa
from dlt.pipeline.exceptions import PipelineStepFailed

import orchestration.settings as settings  # sets telemetry-off env vars
from assets.salesforce.client import SalesforceClient, SalesforceError, SalesforceSettings
from assets.salesforce.convert import ConversionError
from assets.salesforce.direct import DirectLoader, direct_eligible, merge_eligible
from assets.salesforce.fields import (
    CURSOR_FIELD,
    DELETED_FIELD,
    MissingFieldError,
    ObjectPlan,
    plan_object,
)
from assets.salesforce.soql import parse_extra_fields
from assets.salesforce.source import ExtractOptions, KnownRows, ObjectStats, salesforce_source
from sandbox.schema import OBJECT_NAMES, OBJECTS, snake

logger = logging.getLogger("salesops.salesforce")

PIPELINE_NAME = "salesforce"
DATASET = settings.RAW_SALESFORCE_SCHEMA
EXTRA_FIELDS_ENV = "SALESOPS_SF_EXTRA_FIELDS"
_TS = pa.timestamp("us", tz="UTC")
FILE_ROWS = 8 * 122_880  # rows per parquet load file: whole DuckDB row groups
# dlt settings for the duration of our run only (dlt reads them from the environment):
RUN_CONFIG = {
    # one object after the other: readable progress logs, meaningful per-object timings
    "EXTRACT__NEXT_ITEM_MODE": "fifo",
    # parquet files of at most FILE_ROWS rows, loaded one at a time: a file fills whole DuckDB
    # row groups (122,880 rows), which DuckDB writes straight to the database file; smaller
    # files go through the WAL and are written a second time at the checkpoint
    "DATA_WRITER__FILE_MAX_ITEMS": str(FILE_ROWS),
    "LOAD__WORKERS": "1",
    # the loaded parquet files are not needed once in DuckDB (they were kept, ~GBs at scale)
    "LOAD__DELETE_COMPLETED_JOBS": "true",
}


@dataclass
class ObjectResult:
    sobject: str
    table: str
    mode: str
    rows_loaded: int  # new or changed rows extracted and loaded this run
    total_rows: int  # rows in the raw table after the run (deleted ones included)
    deleted_rows: int  # rows with is_deleted = true
    pages: int
    seconds: float
    cursor: str | None
    since: str | None
    columns: list[str] = field(default_factory=list)
    rows_unchanged: int = 0  # re-read rows (cursor overlap) already loaded: skipped
    # how the rows went in: "direct" (first load appended beside the fetch, direct.py),
    # "direct_merge" (change set merged on Id beside the fetch, direct.py), "append" (first load
    # through dlt) or "merge" (dlt merge on Id)
    load: str = "merge"


@dataclass
class ExtractResult:
    objects: dict[str, ObjectResult]
    load_ids: list[str]
    seconds: float
    requests: int
    retries: int
    relogins: int
    # wall seconds per phase: login, describe, setup (warehouse connection, dlt pipeline, table
    # inspection), extract / normalize / load (dlt steps; extract includes the queries), counts,
    # close (the final DuckDB checkpoint)
    phases: dict[str, float] = field(default_factory=dict)


def connect_warehouse(warehouse: str | None = None) -> duckdb.DuckDBPyConnection:
    """The one DuckDB connection of a run, memory bounded by `settings.duckdb_config()`.

    Handed to dlt, which then borrows cursors of it instead of opening (and checkpointing) the
    file once per load job: ~0.1 s per job, 35-45 jobs per run. Close it when done (the close
    checkpoints)."""
    path = Path(warehouse or settings.paths().warehouse)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = duckdb.connect(str(path), config=settings.duckdb_config())
    # raw tables have no meaningful row order: inserts from parquet run 15-18% faster without
    # keeping it (measured on 983k Opportunity rows); set after connecting, so the connection's
    # config stays the project's (DuckDB refuses a second connection with another config)
    conn.execute("SET GLOBAL preserve_insertion_order = false")
    return conn


def pipeline(
    pipelines_dir: str | None = None,
    warehouse: str | None = None,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> Any:
    """The dlt pipeline object (paths read at call time from SALESOPS_HOME); `connection` (from
    `connect_warehouse`) makes dlt use it rather than open the warehouse file per job."""
    p = settings.paths()
    # contract: raw tables carry _dlt_load_id (added by dlt, config scoped to this pipeline) and
    # _dlt_id (added by the source: the record Id, so dlt need not rewrite files to add one)
    key = f"{PIPELINE_NAME.upper()}__NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID"
    os.environ.setdefault(key, "true")
    return dlt.pipeline(
        pipeline_name=PIPELINE_NAME,
        pipelines_dir=pipelines_dir or str(p.dlt_pipelines),
        destination=dlt.destinations.duckdb(
            connection if connection is not None else (warehouse or str(p.warehouse))
        ),
        dataset_name=DATASET,
        progress=None,
    )


def extra_fields_config(
    configured: Sequence[str] | str | None = None, env: Mapping[str, str] | None = None
) -> dict[str, list[str]]:
    """Extra fields from SALESOPS_SF_EXTRA_FIELDS plus `configured` (Dagster config), merged."""
    env = os.environ if env is None else env
    merged = parse_extra_fields(env.get(EXTRA_FIELDS_ENV))
    for obj, fields in parse_extra_fields(configured).items():
        merged.setdefault(obj, [])
        merged[obj] += [f for f in fields if f not in merged[obj]]
    return merged


def plan_objects(
    client: SalesforceClient,
    objects: Sequence[str],
    extra_fields: Mapping[str, Sequence[str]],
) -> list[ObjectPlan]:
    """Describe each object and check its fields (fails before any data moves)."""
    unknown = [o for o in objects if o not in OBJECTS]
    if unknown:
        raise KeyError(f"unknown Salesforce object(s) {unknown}; known: {', '.join(OBJECTS)}")
    stray = [o for o in extra_fields if o not in OBJECTS]
    if stray:
        raise KeyError(
            f"extra fields configured for object(s) {stray} that salesops does not extract; "
            f"known: {', '.join(OBJECTS)}"
        )
    return [plan_object(o, client.describe(o), extra_fields.get(o, ())) for o in objects]


def _inspect_tables(
    conn: duckdb.DuckDBPyConnection, plans: Sequence[ObjectPlan]
) -> tuple[frozenset[str], frozenset[str]]:
    """(first load, ensure table): objects whose raw table does not exist yet or holds no rows
    (appended, not merged), and those plus objects whose table lacks a planned column (they
    yield their typed empty table even without rows, so dlt creates the table / new column).
    Read on the run's connection (a dlt `sql_client` costs its configuration resolution)."""
    fresh, ensure = set(), set()
    try:
        existing: dict[str, set[str]] = {}
        for table, column in conn.execute(
            "select table_name, column_name from information_schema.columns where table_schema = ?",
            [DATASET],
        ).fetchall():
            existing.setdefault(table, set()).add(column)
        for plan in plans:
            if plan.table_name not in existing:
                fresh.add(plan.name)
                continue
            rows = conn.execute(f'select 1 from "{DATASET}"."{plan.table_name}" limit 1').fetchall()
            if not rows:
                fresh.add(plan.name)
            elif not set(plan.columns) <= existing[plan.table_name]:
                ensure.add(plan.name)
    except Exception as exc:  # noqa: BLE001  merge is always correct, append only when sure
        logger.info("could not inspect the warehouse (%s); merging every object", exc)
        return frozenset(), frozenset(p.name for p in plans)
    return frozenset(fresh), frozenset(fresh | ensure)


def _direct_objects(
    conn: duckdb.DuckDBPyConnection,
    plans: Sequence[ObjectPlan],
    fresh: frozenset[str],
    ensure: frozenset[str],
) -> tuple[frozenset[str], frozenset[str]]:
    """(appended, merged): first loads that can be appended straight into DuckDB (the table is
    absent, or empty with exactly dlt's columns) and incremental objects that can be merged
    straight into it (the table has exactly dlt's columns); see direct.py."""
    columns: dict[str, list[str]] = {}
    for table, column in conn.execute(
        "select table_name, column_name from information_schema.columns "
        "where table_schema = ? order by table_name, ordinal_position",
        [DATASET],
    ).fetchall():
        columns.setdefault(table, []).append(column)
    candidates = [p for p in plans if p.name in fresh]
    empty = set()
    for plan in candidates:
        if plan.table_name in columns:
            got = conn.execute(f'select 1 from "{DATASET}"."{plan.table_name}" limit 1').fetchall()
            if not got:
                empty.add(plan.table_name)
    merged = merge_eligible([p for p in plans if p.name not in ensure], columns)
    return direct_eligible(candidates, columns, empty), merged


def dedupe_first_load(conn: duckdb.DuckDBPyConnection, plan: ObjectPlan) -> int:
    """Keep the newest version of each Id in an appended (first-load) table; returns the rows
    removed. Only needed after a query-locator restart: a record read before the restart and
    changed meanwhile comes back in the restarted query (merge would have deduplicated it)."""
    order = f"{snake(CURSOR_FIELD)} desc nulls last" if plan.has_cursor else "id"
    table = f'"{DATASET}"."{plan.table_name}"'
    row = conn.execute(
        f"delete from {table} where rowid in (select rowid from (select rowid, row_number() "
        f"over (partition by id order by {order}) as n from {table}) where n > 1)"
    ).fetchone()
    return int(row[0]) if row else 0


def known_rows_lookup(conn: duckdb.DuckDBPyConnection) -> KnownRows:
    """`(plan, since) -> (id, system_modstamp)` of the raw table's rows stamped >= since (None
    when they cannot be read).

    Incremental runs re-read a window below the cursor (the overlap); a row found there with the
    same Id and SystemModstamp is the version already loaded (Salesforce moves SystemModstamp on
    every change, deletion included) and is skipped. Any failure: nothing is skipped."""
    col = snake(CURSOR_FIELD)

    def lookup(plan: ObjectPlan, since: datetime) -> pa.Table | None:
        # rows created since `since` too: then every stored version of a record created since
        # is among them whatever its stamp (source._may_exist relies on it)
        created = " or created_date >= $since" if "created_date" in plan.columns else ""
        try:
            return conn.sql(
                f'select id, {col} from "{DATASET}"."{plan.table_name}" '
                f"where {col} >= $since{created}",
                params={"since": since},
            ).to_arrow_table()
        except duckdb.Error as exc:
            logger.info("%s: could not read the rows already loaded (%s)", plan.name, exc)
            return None

    return lookup


def _table_counts(
    conn: duckdb.DuckDBPyConnection, plans: Sequence[ObjectPlan]
) -> dict[str, tuple[int, int]]:
    """(rows, deleted rows) per object's raw table, in one query."""
    parts = []
    for i, plan in enumerate(plans):
        deleted = f"count(*) filter (where {snake(DELETED_FIELD)})" if plan.deletable else "0"
        parts.append(
            f'select {i} as i, count(*) as n, {deleted} as d from "{DATASET}"."{plan.table_name}"'
        )
    if not parts:
        return {}
    rows = conn.execute(" union all ".join(parts)).fetchall()
    return {plans[i].name: (int(n), int(d)) for i, n, d in rows}


@contextmanager
def _env(**values: str) -> Iterator[None]:
    """Set environment variables (dlt config) for the duration of a block only."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _root_cause(exc: BaseException) -> Exception | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, SalesforceError | MissingFieldError | ConversionError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def extract_salesforce(
    objects: Sequence[str] | None = None,
    *,
    extra_fields: Sequence[str] | str | None = None,
    settings_: SalesforceSettings | None = None,
    options: ExtractOptions | None = None,
    client: SalesforceClient | None = None,
    full_refresh: bool = False,
    log: Any = None,
) -> ExtractResult:
    """Extract `objects` (default: all of sandbox.schema.OBJECTS) into the warehouse."""
    log = log or logger
    started = time.monotonic()
    objects = list(objects or OBJECT_NAMES)
    options = options or ExtractOptions.from_env()
    client = client or SalesforceClient(settings_, log=log)
    phases: dict[str, float] = {}
    mark = time.monotonic()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.monotonic()
        phases[name] = round(phases.get(name, 0.0) + now - mark, 3)
        mark = now

    ensure_login = getattr(client, "_ensure_login", None)
    if ensure_login is not None:
        ensure_login()
    lap("login")
    plans = plan_objects(client, objects, extra_fields_config(extra_fields))
    lap("describe")
    conn = connect_warehouse()
    direct: DirectLoader | None = None
    try:
        pipe = pipeline(connection=conn)
        if pipe.has_pending_data:
            log.warning("finishing a load package left by an interrupted run before extracting")
            with _env(**RUN_CONFIG):
                pipe.run()
        stats: dict[str, ObjectStats] = {}
        if full_refresh:
            fresh = ensure = frozenset(p.name for p in plans)
        else:
            fresh, ensure = _inspect_tables(conn, plans)
        # full refresh: dlt drops the tables at load time, so they must go through dlt
        appended, merged = (
            _direct_objects(conn, plans, fresh, ensure)
            if options.direct_load and not full_refresh
            else (frozenset(), frozenset())
        )
        direct_objects = appended | merged
        if direct_objects:
            direct = DirectLoader(
                conn,
                DATASET,
                log=log,
                merge=[p.table_name for p in plans if p.name in merged],
            )
            log.info(
                "%d first load(s) appended and %d change set(s) merged straight into DuckDB "
                "beside the fetch",
                len(appended),
                len(merged),
            )
        source = salesforce_source(
            client,
            plans,
            options,
            stats,
            log,
            fresh,
            known_rows_lookup(conn),
            ensure,
            direct,
            direct_objects,
        )
        if full_refresh:
            log.info("full refresh: dropping the selected tables and their cursors first")
        lap("setup")
        try:
            with _env(**RUN_CONFIG):
                info = pipe.run(source, refresh="drop_resources" if full_refresh else None)
        except PipelineStepFailed as exc:
            root = _root_cause(exc)
            if root is not None:  # surface our clear message, not dlt's wrapper
                raise type(root)(str(root)) from exc
            raise
        for plan in plans:
            if plan.name in fresh and stats[plan.name].restarts:
                removed = dedupe_first_load(conn, plan)
                log.warning(
                    "%s: query restarted during a first load; %d older duplicate version(s) "
                    "of records changed meanwhile removed",
                    plan.name,
                    removed,
                )
        if direct is not None:
            phases["direct_inserts"] = round(direct.seconds, 3)
        lap("run")
        steps = {st.step: st for st in (pipe.last_trace.steps if pipe.last_trace else [])}
        for step in ("extract", "normalize", "load"):
            if step in steps and steps[step].finished_at is not None:
                took = steps[step].finished_at - steps[step].started_at
                phases[step] = round(took.total_seconds(), 3)
        counts = _table_counts(conn, plans)
        lap("counts")
    finally:
        if direct is not None:
            direct.close()
        conn.close()
    lap("close")
    results = {}
    for plan in plans:
        st = stats[plan.name]
        total, deleted = counts[plan.name]
        results[plan.name] = ObjectResult(
            sobject=plan.name,
            table=plan.table_name,
            mode=st.mode,
            rows_loaded=st.records,
            total_rows=total,
            deleted_rows=deleted,
            pages=st.pages,
            seconds=round(st.seconds, 3),
            cursor=st.cursor,
            since=st.since,
            columns=list(plan.columns),
            rows_unchanged=st.skipped,
            load=("direct" if plan.name in fresh else "direct_merge")
            if plan.name in direct_objects
            else "append"
            if plan.name in fresh
            else "merge",
        )
    elapsed = time.monotonic() - started
    log.info(
        "Salesforce extract done: %d objects, %d rows in %.1fs (%d requests, %d retries, "
        "%d re-logins)",
        len(plans),
        sum(r.rows_loaded for r in results.values()),
        elapsed,
        client.stats.requests,
        client.stats.retries,
        client.stats.relogins,
    )
    log.info(
        "Salesforce extract phases (s): %s",
        ", ".join(f"{k} {v:.2f}" for k, v in phases.items()),
    )
    return ExtractResult(
        objects=results,
        load_ids=list(info.loads_ids) if info is not None else [],
        seconds=round(elapsed, 3),
        phases=phases,
        requests=client.stats.requests,
        retries=client.stats.retries,
        relogins=client.stats.relogins,
    )
