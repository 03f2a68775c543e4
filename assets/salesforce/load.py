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
from typing import Any

import dlt
from dlt.pipeline.exceptions import PipelineStepFailed

import orchestration.settings as settings  # sets telemetry-off env vars
from assets.salesforce.client import SalesforceClient, SalesforceError, SalesforceSettings
from assets.salesforce.convert import ConversionError
from assets.salesforce.fields import DELETED_FIELD, MissingFieldError, ObjectPlan, plan_object
from assets.salesforce.soql import parse_extra_fields
from assets.salesforce.source import ExtractOptions, ObjectStats, salesforce_source
from sandbox.schema import OBJECT_NAMES, OBJECTS, snake

logger = logging.getLogger("salesops.salesforce")

PIPELINE_NAME = "salesforce"
DATASET = settings.RAW_SALESFORCE_SCHEMA
EXTRA_FIELDS_ENV = "SALESOPS_SF_EXTRA_FIELDS"
# dlt settings for the duration of our run only (dlt reads them from the environment):
RUN_CONFIG = {
    # one object after the other: readable progress logs, meaningful per-object timings
    "EXTRACT__NEXT_ITEM_MODE": "fifo",
    # bounded memory: parquet files of at most 100k rows, loaded one at a time, so DuckDB never
    # holds a whole object's rows in one transaction (peak RSS flat in the row count)
    "DATA_WRITER__FILE_MAX_ITEMS": "100000",
    "LOAD__WORKERS": "1",
}


@dataclass
class ObjectResult:
    sobject: str
    table: str
    mode: str
    rows_loaded: int  # rows extracted and merged this run
    total_rows: int  # rows in the raw table after the run (deleted ones included)
    deleted_rows: int  # rows with is_deleted = true
    pages: int
    seconds: float
    cursor: str | None
    since: str | None
    columns: list[str] = field(default_factory=list)


@dataclass
class ExtractResult:
    objects: dict[str, ObjectResult]
    load_ids: list[str]
    seconds: float
    requests: int
    retries: int
    relogins: int


def pipeline(pipelines_dir: str | None = None, warehouse: str | None = None) -> Any:
    """The dlt pipeline object (paths read at call time from SALESOPS_HOME)."""
    p = settings.paths()
    # contract: raw tables carry _dlt_load_id (added by dlt, config scoped to this pipeline) and
    # _dlt_id (added by the source: the record Id, so dlt need not rewrite files to add one)
    key = f"{PIPELINE_NAME.upper()}__NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID"
    os.environ.setdefault(key, "true")
    return dlt.pipeline(
        pipeline_name=PIPELINE_NAME,
        pipelines_dir=pipelines_dir or str(p.dlt_pipelines),
        destination=dlt.destinations.duckdb(warehouse or str(p.warehouse)),
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


def _empty_tables(pipe: Any, plans: Sequence[ObjectPlan]) -> frozenset[str]:
    """Objects whose raw table does not exist yet or holds no rows (first load: append)."""
    out = set()
    try:
        with pipe.sql_client() as c:
            existing = {
                r[0]
                for r in c.execute_sql(
                    "select table_name from information_schema.tables where table_schema = %s",
                    DATASET,
                )
            }
            for plan in plans:
                if plan.table_name not in existing:
                    out.add(plan.name)
                    continue
                rows = c.execute_sql(f'select 1 from "{DATASET}"."{plan.table_name}" limit 1')
                if not rows:
                    out.add(plan.name)
    except Exception as exc:  # noqa: BLE001  merge is always correct, append only when sure
        logger.info("could not inspect the warehouse (%s); merging every object", exc)
        return frozenset()
    return frozenset(out)


def _table_counts(pipe: Any, plans: Sequence[ObjectPlan]) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    with pipe.sql_client() as c:
        for plan in plans:
            deleted = f"count(*) filter (where {snake(DELETED_FIELD)})" if plan.deletable else "0"
            rows = c.execute_sql(f'select count(*), {deleted} from "{DATASET}"."{plan.table_name}"')
            out[plan.name] = (int(rows[0][0]), int(rows[0][1]))
    return out


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
    plans = plan_objects(client, objects, extra_fields_config(extra_fields))
    pipe = pipeline()
    if pipe.has_pending_data:
        log.warning("finishing a load package left by an interrupted run before extracting")
        pipe.run()
    stats: dict[str, ObjectStats] = {}
    fresh = frozenset(p.name for p in plans) if full_refresh else _empty_tables(pipe, plans)
    source = salesforce_source(client, plans, options, stats, log, fresh)
    if full_refresh:
        log.info("full refresh: dropping the selected tables and their cursors first")
    try:
        with _env(**RUN_CONFIG):
            info = pipe.run(source, refresh="drop_resources" if full_refresh else None)
    except PipelineStepFailed as exc:
        root = _root_cause(exc)
        if root is not None:  # surface our clear message, not dlt's wrapper
            raise type(root)(str(root)) from exc
        raise
    counts = _table_counts(pipe, plans)
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
    return ExtractResult(
        objects=results,
        load_ids=list(info.loads_ids) if info is not None else [],
        seconds=round(elapsed, 3),
        requests=client.stats.requests,
        retries=client.stats.retries,
        relogins=client.stats.relogins,
    )
