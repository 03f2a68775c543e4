"""Publish the analysts' read-only copy of the marts (`marts.duckdb`) atomically, incrementally.

The copy is built in a temporary DuckDB file next to `marts.duckdb` and then swapped in with
`os.replace()` (an atomic rename on POSIX). The pipeline never opens `marts.duckdb` for writing,
so an analyst holding it open read-only never blocks a publish, and never sees a half-built table:
an open connection keeps reading the file it opened (the old inode) and new connections see the
new file whole.

**Copy-on-write.** Re-inserting every table is the expensive part of a publish (1.7 GB at the
large scale), and most weeks most tables are unchanged. So each published table carries a
*content fingerprint* computed in the warehouse (`table_fingerprint`: the column names and types,
the row count and two order-independent aggregates of DuckDB's 64-bit row hash, hashed with
SHA-256), stored in the published file's `publish_tables`. A publish fingerprints the warehouse
tables (one read, no write); when they all equal the fingerprints recorded with the intact
published file, it stops there (mode "unchanged": the file is left as it is). Otherwise it copies
the previously published file to the temp file (a plain file copy), replaces inside the copy only
the tables whose fingerprint differs (and drops the ones gone, adds the new ones), rewrites
`publish_tables` / `publish_info`, checkpoints, then renames it into place (mode "incremental").
Tables whose fingerprint matches are neither read nor rewritten.

A fresh build (mode "full": new temp file, every table copied) happens when more than
`REBUILD_SHARE` of the rows changed (copying the old file and dropping most of it would cost
more), when there is no previous file, when it was not written by this code
(`publish_info.format` differs, e.g. an older publisher or another DuckDB version whose `hash()`
may differ), when the file on disk is not the one the last publish wrote (its size / mtime differ
from the sidecar `.marts.duckdb.publish.json`, e.g. someone opened it read-write), when it has a
WAL, when the free space inside it exceeds the live data (dropped tables leave free blocks; a
rebuild compacts), or when `incremental=False`.

Why a fingerprint and not "the table was rebuilt": dbt rewrites every mart each run, so rebuild
events say nothing about content. A false "unchanged" needs two different table contents with the
same schema, the same row count and equal 128-bit hash aggregates (a 64-bit sum without overflow
and a 64-bit xor of per-row hashes): a hash collision, not a logic path. Tests check every
published table against the warehouse with EXCEPT ALL both ways after incremental publishes.

Windows note: a rename over a file another process holds open fails there; publishing then
raises and the previous copy stays in place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from orchestration.settings import duckdb_config

logger = logging.getLogger(__name__)

PUBLISH_INFO_TABLE = "publish_info"
PUBLISH_TABLES_TABLE = "publish_tables"
TARGET_CATALOG = "publish_target"
WAREHOUSE_CATALOG = "publish_source"
# bump when the fingerprint definition or the file layout changes: older files are rebuilt
FORMAT_VERSION = 2
FORMAT = f"salesops-publish/{FORMAT_VERSION}/duckdb-{duckdb.__version__}"
REBUILD_SHARE = 0.5  # build a fresh file when more than this share of the rows changed


@dataclass(frozen=True)
class PublishResult:
    marts_path: Path
    tables: dict[str, int] = field(default_factory=dict)  # "schema.table" -> rows
    bytes: int = 0
    seconds: float = 0.0
    published_at: datetime | None = None
    mode: str = "full"  # "full", "incremental" or "unchanged" (file left as it was)
    rewritten: tuple[str, ...] = ()  # tables copied from the warehouse by this publish
    reason: str = ""  # why a full rebuild was chosen (empty for incremental)
    fingerprint_seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(self.tables.values())

    @property
    def unchanged(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.tables) - set(self.rewritten)))


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


def sidecar_path(marts_path: Path) -> Path:
    """The publish record beside the analyst file (size / mtime the last publish left)."""
    return marts_path.with_name(f".{marts_path.name}.publish.json")


def table_fingerprint(con: duckdb.DuckDBPyConnection, relation: str) -> tuple[str, int]:
    """(content fingerprint, rows) of a table or view, computed where it lives.

    Covers the column names and types in order, the row count, and the sum (as HUGEINT, no
    overflow) and xor of DuckDB's 64-bit `hash()` of every row: independent of row order, one
    scan, no write. Equal contents give equal fingerprints (within one DuckDB version).
    """
    cols = con.execute(f"select * from {relation} limit 0").description
    signature = [(c[0], str(c[1])) for c in cols]
    rows, total, xor = con.execute(
        f"select count(*), coalesce(sum(hash(t)::hugeint), 0), coalesce(bit_xor(hash(t)), 0) "
        f"from {relation} as t"
    ).fetchone()
    digest = hashlib.sha256(
        json.dumps([FORMAT, signature, int(rows), str(total), str(xor)]).encode()
    ).hexdigest()
    return digest, int(rows)


@dataclass(frozen=True)
class _Source:
    schema: str  # warehouse schema
    name: str
    into: str  # published schema
    fingerprint: str
    rows: int

    @property
    def key(self) -> str:
        return f"{self.into}.{self.name}"


def _list_sources(
    con: duckdb.DuckDBPyConnection, schemas: Sequence[str], warehouse: Path, target: Path
) -> list[tuple[str, str, str]]:
    out = []
    for schema in schemas:
        relations = con.execute(
            "select table_name from information_schema.tables "
            "where table_catalog = ? and table_schema = ? order by table_name",
            [WAREHOUSE_CATALOG, schema],
        ).fetchall()
        if not relations:
            raise ValueError(
                f"schema {schema!r} of {warehouse} has no tables: build the marts "
                "(dbt build) before publishing"
            )
        out += [(schema, name, published_schema(schema, target)) for (name,) in relations]
    reserved = {("main", PUBLISH_INFO_TABLE), ("main", PUBLISH_TABLES_TABLE)}
    clash = [f"{s}.{n}" for s, n, into in out if (into, n) in reserved]
    if clash:
        raise ValueError(f"{clash} would overwrite the publish bookkeeping tables: rename them")
    return out


def _reuse_check(target: Path) -> str:
    """Empty when the published file may be copied and patched, else why not."""
    if not target.exists():
        return "no previous publish"
    if target.with_name(target.name + ".wal").exists():
        return "the published file has a WAL (opened read-write since)"
    side = sidecar_path(target)
    try:
        record = json.loads(side.read_text())
    except (OSError, ValueError):
        return f"no valid publish record {side.name}"
    if record.get("format") != FORMAT:
        return f"publish format changed ({record.get('format')} -> {FORMAT})"
    st = target.stat()
    if [record.get("size"), record.get("mtime_ns")] != [st.st_size, st.st_mtime_ns]:
        return "the published file changed since the last publish"
    return ""


def _recorded_fingerprints(con: duckdb.DuckDBPyConnection) -> dict[str, str] | None:
    """Fingerprints stored in the attached copy (None when it was not written by this format)."""
    have = {
        r[0]
        for r in con.execute(
            "select table_name from information_schema.tables "
            "where table_catalog = ? and table_schema = 'main'",
            [TARGET_CATALOG],
        ).fetchall()
    }
    if not {PUBLISH_INFO_TABLE, PUBLISH_TABLES_TABLE} <= have:
        return None
    info = con.execute(
        f"select * from {TARGET_CATALOG}.main.{PUBLISH_INFO_TABLE} limit 1"
    ).fetch_df()
    if "format" not in info.columns or len(info) != 1 or info["format"].iloc[0] != FORMAT:
        return None
    rows = con.execute(
        f"select table_name, fingerprint from {TARGET_CATALOG}.main.{PUBLISH_TABLES_TABLE}"
    ).fetchall()
    return dict(rows)


def _write_sidecar(target: Path, fingerprints: dict[str, str]) -> None:
    st = target.stat()
    side = sidecar_path(target)
    tmp = side.with_name(side.name + f".{os.getpid()}.tmp")
    record = {
        "format": FORMAT,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "tables": fingerprints,  # a hint only: the copy's own publish_tables decides
    }
    tmp.write_text(json.dumps(record, sort_keys=True))
    os.replace(tmp, side)


def publish_marts(
    warehouse_path: str | Path,
    marts_path: str | Path,
    schemas: Sequence[str] = ("marts",),
    *,
    incremental: bool = True,
    rebuild_share: float = REBUILD_SHARE,
) -> PublishResult:
    """Publish every table and view of `schemas` from the warehouse into `marts_path`, atomically.

    Views are materialised as tables (the analyst file has no upstream to read from); the schema
    named like the file lands in `main` (see `published_schema`). With `incremental` (default)
    only tables whose content fingerprint changed are copied (see the module docstring), unless
    more than `rebuild_share` of the rows changed (then a fresh file is cheaper). Returns
    the table row counts, what was rewritten, the file size and the timing. Raises (leaving the
    previous copy untouched) when the warehouse is missing or a schema has nothing to publish.
    """
    warehouse = Path(warehouse_path).resolve()
    target = Path(marts_path).resolve()
    if not warehouse.exists():
        raise FileNotFoundError(f"warehouse {warehouse} does not exist: run the pipeline first")
    if target == warehouse:
        raise ValueError("marts_path must differ from the warehouse path")
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    reason = _reuse_check(target) if incremental else "incremental=False"
    result = _publish(warehouse, target, schemas, reuse=not reason, rebuild_share=rebuild_share)
    if not isinstance(result, PublishResult):  # not patched: build fresh (fingerprints known)
        reason = (
            f"more than {rebuild_share:.0%} of the rows changed, or the previous file is not "
            "reusable (older format, compaction due)"
        )
        result = _publish(warehouse, target, schemas, reuse=False, known=result)
        assert isinstance(result, PublishResult)
    result = dataclasses.replace(result, reason=reason, seconds=time.monotonic() - started)
    logger.info(
        "published %d tables (%d rows, %.1f MB) to %s in %.2f s: %s, %d rewritten%s",
        len(result.tables),
        result.total_rows,
        result.bytes / 1e6,
        target,
        result.seconds,
        result.mode,
        len(result.rewritten),
        f" ({result.reason})" if result.reason else "",
    )
    return result


def _publish(
    warehouse: Path,
    target: Path,
    schemas: Sequence[str],
    *,
    reuse: bool,
    rebuild_share: float = REBUILD_SHARE,
    known: tuple[list[_Source], float] | None = None,
) -> PublishResult | tuple[list[_Source], float]:
    """One attempt. When `reuse` was asked but patching the previous file is not possible (or
    not worth it), returns the fingerprinted sources instead, for a fresh build (`known`)."""
    started = time.monotonic()
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{time.time_ns()}.tmp")
    spill = tmp.with_name(tmp.name + ".spill")
    local = _quote(TARGET_CATALOG)
    rewritten: list[str] = []
    try:
        # explicit catalog names: the new file's own name (derived from the file name) could equal
        # a schema name and make references ambiguous
        # an in-memory database spills to ./.tmp by default: spill beside the target instead
        con = duckdb.connect(":memory:", config={**duckdb_config(), "temp_directory": str(spill)})
        try:
            con.execute(f"attach {_sql_string(str(warehouse))} as {WAREHOUSE_CATALOG} (read_only)")
            if known is None:
                t_fp = time.monotonic()
                sources = []
                for schema, name, into in _list_sources(con, schemas, warehouse, target):
                    relation = f"{WAREHOUSE_CATALOG}.{_quote(schema)}.{_quote(name)}"
                    digest, rows = table_fingerprint(con, relation)
                    sources.append(_Source(schema, name, into, digest, rows))
                fingerprint_seconds = time.monotonic() - t_fp
            else:
                sources, fingerprint_seconds = known
            previous: dict[str, str] | None = None
            if reuse and _recorded_in_sidecar(target) == {s.key: s.fingerprint for s in sources}:
                # the intact published file already holds exactly these contents: keep it
                con.close()
                _touch_sidecar(target)
                return PublishResult(
                    target,
                    {s.key: s.rows for s in sources},
                    target.stat().st_size,
                    time.monotonic() - started,
                    None,
                    "unchanged",
                    (),
                    "",
                    fingerprint_seconds,
                )
            if reuse and _mostly_changed(target, sources, rebuild_share):
                return sources, fingerprint_seconds  # patching would rewrite most of the file
            if reuse:
                shutil.copyfile(target, tmp)
                con.execute(f"attach {_sql_string(str(tmp))} as {local}")
                previous = _recorded_fingerprints(con)
                if previous is None:
                    return sources, fingerprint_seconds
            else:
                con.execute(f"attach {_sql_string(str(tmp))} as {local}")
            wanted = {s.key: s for s in sources}
            if previous is not None:
                changed = [s for s in sources if previous.get(s.key) != s.fingerprint]
                drop = [k for k in previous if k not in wanted]
                drop += [s.key for s in changed if s.key in previous]
                for key in drop:
                    into, name = key.split(".", 1)
                    con.execute(f"drop table if exists {local}.{_quote(into)}.{_quote(name)}")
                    logger.info("publish: replacing or dropping %s", key)
                if drop:
                    con.execute(f"checkpoint {local}")  # frees the dropped blocks for reuse
            else:
                changed = sources
            for into in sorted({s.into for s in changed}):
                con.execute(f"create schema if not exists {local}.{_quote(into)}")
            for src in changed:
                source = f"{WAREHOUSE_CATALOG}.{_quote(src.schema)}.{_quote(src.name)}"
                copy = f"{local}.{_quote(src.into)}.{_quote(src.name)}"
                con.execute(f"create table {copy} as select * from {source}")
                rewritten.append(src.key)
                logger.info(
                    "published %s.%s as %s (%d rows)", src.schema, src.name, src.key, src.rows
                )
            con.execute(f"detach {WAREHOUSE_CATALOG}")
            published_at = datetime.now(UTC)
            mode = "full" if previous is None else "incremental"
            con.execute(
                f"create or replace table {local}.main.{PUBLISH_INFO_TABLE} as select "
                "?::timestamp as published_at, ? as source, ?::integer as tables, "
                "? as format, ? as mode, ?::integer as rewritten",
                [
                    published_at.replace(tzinfo=None),
                    str(warehouse),
                    len(sources),
                    FORMAT,
                    mode,
                    len(rewritten),
                ],
            )
            con.execute(
                f"create or replace table {local}.main.{PUBLISH_TABLES_TABLE} ("
                "table_name varchar, source_table varchar, row_count bigint, "
                "fingerprint varchar, rewritten boolean)"
            )
            con.executemany(
                f"insert into {local}.main.{PUBLISH_TABLES_TABLE} values (?, ?, ?, ?, ?)",
                [
                    [s.key, f"{s.schema}.{s.name}", s.rows, s.fingerprint, s.key in rewritten]
                    for s in sources
                ],
            )
            con.execute(f"checkpoint {local}")
            if previous is not None:
                used, free = _block_usage(con)
                if free > used:
                    logger.info("publish: %d free vs %d used blocks: full rebuild", free, used)
                    return sources, fingerprint_seconds
            con.execute("use memory")
            con.execute(f"detach {local}")
        finally:
            con.close()
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _write_sidecar(target, {s.key: s.fingerprint for s in sources})
    except BaseException:
        _discard(tmp)
        raise
    finally:
        if tmp.exists():  # an attempt that returned the sources (not patched)
            _discard(tmp)
        shutil.rmtree(spill, ignore_errors=True)
    return PublishResult(
        target,
        {s.key: s.rows for s in sources},
        target.stat().st_size,
        time.monotonic() - started,
        published_at,
        mode,
        tuple(rewritten),
        "",
        fingerprint_seconds,
    )


def _recorded_in_sidecar(target: Path) -> dict[str, str]:
    """The fingerprints the last publish wrote beside the file (valid only after
    `_reuse_check` passed: the file is the one written with them)."""
    try:
        return json.loads(sidecar_path(target).read_text()).get("tables") or {}
    except (OSError, ValueError):
        return {}


def _touch_sidecar(target: Path) -> None:
    """Record that an unchanged publish verified the file (size/mtime stay the same)."""
    side = sidecar_path(target)
    record = json.loads(side.read_text())
    record["verified_at"] = datetime.now(UTC).isoformat()
    tmp = side.with_name(side.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, sort_keys=True))
    os.replace(tmp, side)


def _mostly_changed(target: Path, sources: list[_Source], share: float) -> bool:
    """True when the tables the sidecar says changed hold most of the rows (then a file copy
    plus drops costs more than writing a fresh file)."""
    recorded = _recorded_in_sidecar(target)
    total = sum(s.rows for s in sources)
    changed = sum(s.rows for s in sources if recorded.get(s.key) != s.fingerprint)
    return total > 0 and changed > share * total


def _block_usage(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    row = con.execute(
        "select used_blocks, free_blocks from pragma_database_size() where database_name = ?",
        [TARGET_CATALOG],
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def _discard(tmp: Path) -> None:
    for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
        with contextlib.suppress(OSError):
            leftover.unlink()
