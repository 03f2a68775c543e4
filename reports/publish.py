"""Publish the analysts' read-only copy of the marts (`marts.duckdb`) atomically.

The copy is built in a temporary DuckDB file next to `marts.duckdb` and then swapped in with
`os.replace()` (an atomic rename on POSIX). The pipeline never opens `marts.duckdb` itself, so an
analyst holding it open read-only never blocks a publish, and never sees a half-built table: an
open connection keeps reading the file it opened (the old inode) and new connections see the new
file whole.

Windows note: a rename over a file another process holds open fails there; publishing then
raises and the previous copy stays in place.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

logger = logging.getLogger(__name__)

PUBLISH_INFO_TABLE = "publish_info"
TARGET_CATALOG = "publish_target"


@dataclass(frozen=True)
class PublishResult:
    marts_path: Path
    tables: dict[str, int] = field(default_factory=dict)  # "schema.table" -> rows
    bytes: int = 0
    seconds: float = 0.0
    published_at: datetime | None = None

    @property
    def total_rows(self) -> int:
        return sum(self.tables.values())


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def published_schema(schema: str, marts_path: Path) -> str:
    """Where a warehouse schema lands in the analyst file.

    DuckDB names a database after its file (`marts.duckdb` -> catalog `marts`); a schema with the
    same name makes `marts.opportunities` ambiguous. That schema therefore lands in `main`, so
    `select * from opportunities` and `select * from marts.opportunities` both work; other schemas
    keep their names (`forecasts.forecasts`).
    """
    return "main" if schema == marts_path.stem else schema


def publish_marts(
    warehouse_path: str | Path,
    marts_path: str | Path,
    schemas: Sequence[str] = ("marts",),
) -> PublishResult:
    """Copy every table and view of `schemas` from the warehouse into `marts_path`, atomically.

    Views are materialised as tables (the analyst file has no upstream to read from); the schema
    named like the file lands in `main` (see `published_schema`). Returns the
    table row counts, the file size and the timing. Raises (leaving the previous copy untouched)
    when the warehouse is missing or a schema has nothing to publish.
    """
    warehouse = Path(warehouse_path).resolve()
    target = Path(marts_path).resolve()
    if not warehouse.exists():
        raise FileNotFoundError(f"warehouse {warehouse} does not exist: run the pipeline first")
    if target == warehouse:
        raise ValueError("marts_path must differ from the warehouse path")
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{time.time_ns()}.tmp")
    tables: dict[str, int] = {}
    try:
        # explicit catalog names: the new file's own name (derived from the file name) could equal
        # a schema name and make references ambiguous
        con = duckdb.connect(":memory:")
        try:
            local = _quote(TARGET_CATALOG)
            con.execute(f"attach {_sql_string(str(tmp))} as {local}")
            con.execute(f"attach {_sql_string(str(warehouse))} as warehouse (read_only)")
            for schema in schemas:
                relations = con.execute(
                    "select table_name from information_schema.tables "
                    "where table_catalog = 'warehouse' and table_schema = ? order by table_name",
                    [schema],
                ).fetchall()
                if not relations:
                    raise ValueError(
                        f"schema {schema!r} of {warehouse} has no tables: build the marts "
                        "(dbt build) before publishing"
                    )
                into = published_schema(schema, target)
                con.execute(f"create schema if not exists {local}.{_quote(into)}")
                for (name,) in relations:
                    source = f"warehouse.{_quote(schema)}.{_quote(name)}"
                    copy = f"{local}.{_quote(into)}.{_quote(name)}"
                    con.execute(f"create table {copy} as select * from {source}")
                    rows = con.execute(f"select count(*) from {copy}").fetchone()[0]
                    tables[f"{into}.{name}"] = int(rows)
                    logger.info(
                        "published %s.%s as %s.%s (%d rows)", schema, name, into, name, rows
                    )
            con.execute("detach warehouse")
            published_at = datetime.now(UTC)
            con.execute(
                f"create table {local}.main.{PUBLISH_INFO_TABLE} as select ? as published_at, "
                "? as source, ? as tables",
                [published_at.replace(tzinfo=None), str(warehouse), len(tables)],
            )
            con.execute(f"checkpoint {local}")
            con.execute("use memory")
            con.execute(f"detach {local}")
        finally:
            con.close()
        os.replace(tmp, target)
    except BaseException:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)
        raise
    size = target.stat().st_size
    seconds = time.monotonic() - started
    logger.info(
        "published %d tables (%d rows, %.1f MB) to %s in %.2f s",
        len(tables),
        sum(tables.values()),
        size / 1e6,
        target,
        seconds,
    )
    return PublishResult(target, tables, size, seconds, published_at)
