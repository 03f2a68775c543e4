"""Publish the analysts' read-only copy of the marts (`marts.duckdb`) atomically, incrementally.

The copy is built in a temporary DuckDB file next to `marts.duckdb` and then swapped in with
`os.replace()` (an atomic rename on POSIX). The pipeline never opens `marts.duckdb` for writing,
so an analyst holding it open read-only never blocks a publish, and never sees a half-built table:
an open connection keeps reading the file it opened (the old inode) and new connections see the
new file whole.

**Row-level copy-on-write.** Re-inserting every table is the expensive part of a publish, and a
weekly change touches a few percent of the rows of the big marts. A publish therefore works out,
per warehouse relation, what differs from the published copy, in one of two ways:

* **by key, from dbt's own change set** (no hashing; `_plan_by_key`). The opportunity-keyed
  incremental marts (dbt_project/macros/incremental_by_opportunity.sql) leave one state row
  per model in `intermediate.incremental_state`: `build_id` (the dbt invocation that built the
  table), `previous_build_id` (the build it replaced incrementally; null after a full build),
  `previous_as_of_date` (weekly snapshots) and `changed_opportunities`; the opportunities it
  recomputed are in `intermediate.incremental_changed`. Such a build deleted and re-inserted
  exactly the rows matching its pre-hook's predicate - `opportunity_id` among the changed ids,
  or (weekly snapshots, which add a week of rows for every open deal) `snapshot_date` after
  `previous_as_of_date` - and left every other row as it was. The published file records per
  table the `build_id` it holds (`publish_tables.build_id`). Same build id as the warehouse's:
  the table is kept, unread. `previous_build_id` = the recorded one: the patch deletes the
  published rows matching the predicate and inserts the warehouse rows matching it, after
  checking that the row counts add up (published - matching published + matching warehouse =
  warehouse rows; a mart edited outside dbt fails this). Anything else (no state, a full
  build, two builds without a publish in between, changed columns, counts out of step) takes
  the hash path;
* **by row hashes** (every other table, and a keyed one whose chain is broken):

1. hashes every row of the warehouse relation once (DuckDB's 64-bit `hash()` of the whole row,
   kept with the row's `rowid` in a temp table) and derives the table's *content fingerprint*
   from those hashes (`table_fingerprint`: column names and types, row count, the sum and xor of
   the row hashes, hashed with SHA-256);
2. compares each fingerprint with the one recorded in the published file (`publish_tables`,
   read from the intact last published file attached read-only). Equal: the table is kept as it
   is (not read further, not rewritten). All kept with equal fingerprints and build ids: stop
   (mode "unchanged": the file is left as it is);
3. for a changed table whose columns (names and types) are unchanged, hashes the published
   table's rows too and takes D = the hashes whose count differs between the two sides (the
   multiset difference: a changed row, an added or removed duplicate all land in D). The patch
   is "delete the published rows whose hash is in D, insert the warehouse rows whose hash is in
   D" - exact for multisets. A table whose delta is more than `PATCH_SHARE` of its rows, whose
   columns changed, or that is new, is rewritten whole (drop + `create table as`).

A view is hashed only when every table so far holds its published rows (a no-change publish
can then stay "unchanged"); otherwise the file is rewritten anyway and the view is copied whole
without hashing: evaluating it once is cheaper than evaluating it to hash it, hashing its
published rows, and evaluating it again for the rows to insert. Its fingerprint is then unknown
(NULL). The exception is `attribution_data_driven` (the biggest view; its Markov credits move
with the channel effects every week): when the journeys' dbt build chain holds and the view is
the one `touch_view_sql` defines, it is patched from the journeys' change set - the recomputed
deals' rows deleted and re-inserted, the other deals' Markov credit columns updated in place
when the removal effects moved (reports/publish_credits.py; `patched_by` key, listed in
`PublishResult.credits_patched`; its `build_id` is the journeys build it was computed from).

Key patches address rows by `rowid` on both sides (one scan of the key columns per side in the
plan): `insert ... where opportunity_id in (select ...)` would read every column of every
warehouse row (a semi join is no scan filter), a `rowid in (...)` fetch reads just those rows.

4. when the rows to write (inserted rows of patched tables + rows of rewritten tables) exceed
   `REBUILD_SHARE` of all rows, builds a fresh file (mode "full"); otherwise copies the last
   published file to the temp file (a plain file copy, run in a thread beside the plan when a
   dbt build id changed since the last publish, i.e. the file will be rewritten), applies the
   drops, rewrites and patches there (the rowids computed on the published file are the
   copy's: same bytes), checks the patched row counts, rewrites `publish_tables` /
   `publish_info`, checkpoints, then renames it into place (mode "incremental"). Every publish
   records the build ids the warehouse state names, whichever way it went (a fresh build too),
   so the next one can patch by key.

A fresh build also happens when there is no previous file, when it was not written by this code
(`publish_info.format` differs, e.g. an older publisher or another DuckDB version whose `hash()`
may differ), when the file on disk is not the one the last publish wrote (its size / mtime differ
from the sidecar `.marts.duckdb.publish.json`, e.g. someone opened it read-write), when it has a
WAL, when the free space inside it exceeds the live data (dropped tables and vacuumed deletes
leave free blocks; a rebuild compacts: this bounds the file at about twice its live data over
repeated patches), or when `incremental=False`. A fresh build made without a reusable previous
file does not fingerprint the warehouse at all (nothing to compare with): it records no
fingerprint, and the next publish diffs every table that is not patched by key row by row once
(and records them).

Why hashes for the other tables and not "the table was rebuilt": dbt rewrites every other mart
each run, so rebuild events say nothing about their content. The key path trusts that the marts
are written by dbt only (the pipeline is the warehouse's single writer); the row-count check
catches rows added or removed outside it, not values edited in place. Collision assumption
(the same for the fingerprint and the row diff): a false "unchanged" needs two different table
contents with the same schema, the same row count and equal 128-bit hash aggregates (a 64-bit
sum without overflow and a 64-bit xor); a wrong patch needs two different rows of one table
with the same 64-bit `hash()` whose counts differ, and the row in D on the other side - a hash
collision, not a logic path (about n^2 / 2^65 for n rows changed against the table: ~1e-7 for
a million-row delta on a 10-million-row table). Tests check every published table against the
warehouse with EXCEPT ALL both ways after patch publishes, by hash and by key.

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
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from assets.attribution.warehouse import CHANNEL_TABLE, JOURNEYS_TABLE, TOUCH_TABLE
from orchestration.settings import duckdb_config
from reports.publish_credits import CreditsPlan, apply_credits, plan_credits

logger = logging.getLogger(__name__)

PUBLISH_INFO_TABLE = "publish_info"
PUBLISH_TABLES_TABLE = "publish_tables"
TARGET_CATALOG = "publish_target"
PREVIOUS_CATALOG = "publish_previous"
WAREHOUSE_CATALOG = "publish_source"
# bump when the fingerprint definition or the file layout changes: older files are rebuilt
# 3: row-level patches; publish_tables gains action / rows_deleted / rows_inserted, and the
#    fingerprint may be NULL (a fresh build made without a previous file records none)
# 4: publish_tables gains build_id / patched_by (patches keyed by dbt's changed opportunities)
FORMAT_VERSION = 4
FORMAT = f"salesops-publish/{FORMAT_VERSION}/duckdb-{duckdb.__version__}"
# build a fresh file when the rows to write exceed this share of all rows
REBUILD_SHARE = 0.5
# rewrite a changed table whole when its delete + insert rows exceed this share of its
# published + warehouse rows (inserting a row costs about what copying it costs; dead rows
# left by deletes cost file space until DuckDB vacuums them or a rebuild compacts)
PATCH_SHARE = 0.3
ROW_ALIAS = "__publish_row"  # the table alias whose hash() is the row hash
# dbt's bookkeeping of the opportunity-keyed incremental models
# (dbt_project/macros/incremental_by_opportunity.sql): one state row per model, and the
# opportunities whose rows the model's last incremental build deleted and re-inserted
STATE_TABLE = ("intermediate", "incremental_state")
CHANGED_TABLE = ("intermediate", "incremental_changed")
KEY_COLUMN = "opportunity_id"
WEEK_COLUMN = "snapshot_date"  # weekly snapshots also rebuild every row after the last as-of


@dataclass(frozen=True)
class PublishResult:
    marts_path: Path
    tables: dict[str, int] = field(default_factory=dict)  # "schema.table" -> rows
    bytes: int = 0
    seconds: float = 0.0
    published_at: datetime | None = None
    mode: str = "full"  # "full", "incremental" or "unchanged" (file left as it was)
    rewritten: tuple[str, ...] = ()  # tables copied whole from the warehouse by this publish
    reason: str = ""  # why a full rebuild was chosen (empty for incremental)
    fingerprint_seconds: float = 0.0  # hashing the warehouse rows (0 when not fingerprinted)
    patched: tuple[str, ...] = ()  # tables updated in place with their row delta
    rows_deleted: int = 0  # rows deleted from patched tables
    rows_inserted: int = 0  # rows inserted into patched tables
    diff_seconds: float = 0.0  # hashing the published rows of changed tables + the deltas
    keyed: tuple[str, ...] = ()  # of `patched`: patched by dbt's changed opportunities, no hash
    hashed_rows: int = 0  # warehouse + published rows hashed by this publish
    # seconds per phase of an incremental publish: plan (hashes, diffs, key plans), copy (the
    # last published file), write (drops, rewrites, patches), checkpoint, fsync
    step_seconds: dict[str, float] = field(default_factory=dict)
    # of `patched`: the touch credits view patched from the journeys' change set
    # (reports/publish_credits.py), and its Markov rows whose credits were updated
    credits_patched: tuple[str, ...] = ()
    rows_updated: int = 0

    @property
    def total_rows(self) -> int:
        return sum(self.tables.values())

    @property
    def unchanged(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.tables) - set(self.rewritten) - set(self.patched)))


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _in_warehouse(schema: str, name: str) -> str:
    """A warehouse relation, qualified and quoted (the warehouse is attached as
    `WAREHOUSE_CATALOG`)."""
    return f"{WAREHOUSE_CATALOG}.{_quote(schema)}.{_quote(name)}"


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


def _signature(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str]]:
    return [(c[0], str(c[1])) for c in con.execute(f"select * from {relation} limit 0").description]


def _alias(signature: list[tuple[str, str]]) -> str:
    """A table alias no column is named like: `hash(alias)` must hash the whole row."""
    names = {n.lower() for n, _ in signature}
    alias = ROW_ALIAS
    while alias in names:
        alias += "_"
    return alias


def _digest(signature: list[tuple[str, str]], rows: int, total: object, xor: object) -> str:
    return hashlib.sha256(
        json.dumps([FORMAT, signature, int(rows), str(total), str(xor)]).encode()
    ).hexdigest()


def table_fingerprint(con: duckdb.DuckDBPyConnection, relation: str) -> tuple[str, int]:
    """(content fingerprint, rows) of a table or view, computed where it lives.

    Covers the column names and types in order, the row count, and the sum (as HUGEINT, no
    overflow) and xor of DuckDB's 64-bit `hash()` of every row: independent of row order, one
    scan, no write. Equal contents give equal fingerprints (within one DuckDB version). The
    publish computes the same value from the row hashes it keeps (`_hash_rows`).
    """
    signature = _signature(con, relation)
    a = _alias(signature)
    rows, total, xor = con.execute(
        f"select count(*), coalesce(sum(hash({a})::hugeint), 0), coalesce(bit_xor(hash({a})), 0) "
        f"from {relation} as {a}"
    ).fetchone()
    return _digest(signature, rows, total, xor), int(rows)


@dataclass
class _Source:
    schema: str  # warehouse schema
    name: str
    into: str  # published schema
    is_view: bool
    signature: list[tuple[str, str]]
    fingerprint: str | None = None  # None: not computed (fresh build without a previous file)
    rows: int = 0
    # what this publish does with it: "kept", "patched", "rewritten", "created"
    action: str = "created"
    rows_deleted: int = 0
    rows_inserted: int = 0
    prev_rows: int = 0
    hashes: str = ""  # temp table of (r, h) of the warehouse rows, while diffing
    delta: str = ""  # temp tables prefix holding the delta (rowids / hashes)
    build_id: str | None = None  # the dbt build the warehouse table holds (incremental models)
    key_filter: str = ""  # patched by key: the rows the dbt build replaced (a SQL predicate)
    credits: CreditsPlan | None = None  # the touch credits view patched from the journeys
    rows_updated: int = 0

    @property
    def key(self) -> str:
        return f"{self.into}.{self.name}"

    @property
    def relation(self) -> str:
        return _in_warehouse(self.schema, self.name)

    def published(self, catalog: str) -> str:
        return f"{_quote(catalog)}.{_quote(self.into)}.{_quote(self.name)}"

    @property
    def patchable(self) -> bool:
        """Rows addressable by `rowid` in the published copy (no column is named rowid)."""
        return "rowid" not in {n.lower() for n, _ in self.signature}

    @property
    def has_rowid(self) -> bool:
        """Warehouse rows addressable by `rowid` (a patchable base table)."""
        return self.patchable and not self.is_view


def _list_sources(
    con: duckdb.DuckDBPyConnection, schemas: Sequence[str], warehouse: Path, target: Path
) -> list[_Source]:
    out: list[_Source] = []
    for schema in schemas:
        relations = con.execute(
            "select table_name, table_type from information_schema.tables "
            "where table_catalog = ? and table_schema = ? order by table_name",
            [WAREHOUSE_CATALOG, schema],
        ).fetchall()
        if not relations:
            raise ValueError(
                f"schema {schema!r} of {warehouse} has no tables: build the marts "
                "(dbt build) before publishing"
            )
        for name, kind in relations:
            relation = f"{WAREHOUSE_CATALOG}.{_quote(schema)}.{_quote(name)}"
            out.append(
                _Source(
                    schema,
                    name,
                    published_schema(schema, target),
                    kind == "VIEW",
                    _signature(con, relation),
                )
            )
    reserved = {("main", PUBLISH_INFO_TABLE), ("main", PUBLISH_TABLES_TABLE)}
    clash = [f"{s.schema}.{s.name}" for s in out if (s.into, s.name) in reserved]
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


@dataclass(frozen=True)
class _Recorded:
    fingerprint: str | None
    rows: int
    build_id: str | None = None


@dataclass(frozen=True)
class _Build:
    """A model's state row: the build its table holds and the build it replaced."""

    build_id: str | None
    previous_build_id: str | None  # null: a full build
    previous_as_of_date: object  # weekly snapshots: rows dated after it were rebuilt too
    changed_opportunities: int | None  # null: a full build


def _columns(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> set[str]:
    return {
        r[0].lower()
        for r in con.execute(
            "select column_name from information_schema.columns "
            "where table_catalog = ? and table_schema = ? and table_name = ?",
            [WAREHOUSE_CATALOG, schema, name],
        ).fetchall()
    }


def _built_from(src: _Source) -> str:
    """The dbt model whose build a published relation records: its own, or for the touch
    credits view the journeys it is computed from (reports/publish_credits.py)."""
    name = f"{src.schema}.{src.name}"
    return JOURNEYS_TABLE if src.is_view and name == TOUCH_TABLE else name


def _builds(con: duckdb.DuckDBPyConnection) -> dict[str, _Build]:
    """dbt's state rows per model ("schema.identifier"), empty when the warehouse has no (or an
    older) bookkeeping. A model with more than one state row is left out (hash path)."""
    state = _columns(con, *STATE_TABLE)
    wanted = {"model", "build_id", "previous_build_id", "previous_as_of_date"}
    if not wanted | {"changed_opportunities"} <= state or not {"model", KEY_COLUMN} <= _columns(
        con, *CHANGED_TABLE
    ):
        return {}
    rows = con.execute(
        "select model, any_value(build_id), any_value(previous_build_id), "
        "any_value(previous_as_of_date), any_value(changed_opportunities) "
        f"from {WAREHOUSE_CATALOG}.{STATE_TABLE[0]}.{STATE_TABLE[1]} "
        "group by model having count(*) = 1"
    ).fetchall()
    return {r[0]: _Build(r[1], r[2], r[3], r[4]) for r in rows}


def _recorded(con: duckdb.DuckDBPyConnection, catalog: str) -> dict[str, _Recorded] | None:
    """What the attached published file recorded per table (None when not written by this
    format)."""
    have = {
        r[0]
        for r in con.execute(
            "select table_name from information_schema.tables "
            "where table_catalog = ? and table_schema = 'main'",
            [catalog],
        ).fetchall()
    }
    if not {PUBLISH_INFO_TABLE, PUBLISH_TABLES_TABLE} <= have:
        return None
    info = con.execute(f"select * from {_quote(catalog)}.main.{PUBLISH_INFO_TABLE} limit 1")
    names = [c[0] for c in info.description]
    rows = info.fetchall()
    if "format" not in names or len(rows) != 1 or rows[0][names.index("format")] != FORMAT:
        return None
    return {
        name: _Recorded(fingerprint, int(count), build_id)
        for name, fingerprint, count, build_id in con.execute(
            f"select table_name, fingerprint, row_count, build_id "
            f"from {_quote(catalog)}.main.{PUBLISH_TABLES_TABLE}"
        ).fetchall()
    }


def _write_sidecar(target: Path, fingerprints: dict[str, str | None]) -> None:
    st = target.stat()
    side = sidecar_path(target)
    tmp = side.with_name(side.name + f".{os.getpid()}.tmp")
    record = {
        "format": FORMAT,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "tables": fingerprints,  # a hint only: the file's own publish_tables decides
    }
    tmp.write_text(json.dumps(record, sort_keys=True))
    os.replace(tmp, side)


def _touch_sidecar(target: Path) -> None:
    """Record that an unchanged publish verified the file (size/mtime stay the same)."""
    side = sidecar_path(target)
    record = json.loads(side.read_text())
    record["verified_at"] = datetime.now(UTC).isoformat()
    tmp = side.with_name(side.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, sort_keys=True))
    os.replace(tmp, side)


def _block_usage(con: duckdb.DuckDBPyConnection, catalog: str) -> tuple[int, int]:
    row = con.execute(
        "select used_blocks, free_blocks from pragma_database_size() where database_name = ?",
        [catalog],
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def _discard(tmp: Path) -> None:
    for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
        with contextlib.suppress(OSError):
            leftover.unlink()


def _hash_rows(con: duckdb.DuckDBPyConnection, src: _Source, temp: str) -> None:
    """Hash every warehouse row of `src` into temp table `temp` (r = rowid, h = row hash) and
    set its fingerprint and row count from those hashes (the same value as
    `table_fingerprint`)."""
    a = _alias(src.signature)
    rowid = "rowid" if src.has_rowid else "null::bigint"
    con.execute(
        f"create or replace temp table {temp} as "
        f"select {rowid} as r, hash({a}) as h from {src.relation} as {a}"
    )
    rows, total, xor = con.execute(
        f"select count(*), coalesce(sum(h::hugeint), 0), coalesce(bit_xor(h), 0) from {temp}"
    ).fetchone()
    src.fingerprint = _digest(src.signature, rows, total, xor)
    src.rows = int(rows)
    src.hashes = temp


def _diff(con: duckdb.DuckDBPyConnection, src: _Source, n: int) -> None:
    """Row delta of a changed table against its published copy (attached read-only as
    PREVIOUS_CATALOG): keeps the published rowids to delete (`<delta>_del`) and the warehouse
    rows to insert (`<delta>_ins`: rowid and hash; a view's rows are picked by hash); sets
    rows_deleted / rows_inserted.

    D = the hashes whose number of rows differs between the two sides (one aggregate over both
    sides' row hashes): a changed row's old and new hash, an added or removed duplicate's hash.
    Every row with a hash in D goes out, every warehouse row with a hash in D comes in: exact
    for multisets. (A hash join keeping the unmatched rows was up to 2x faster but multiplies
    duplicate rows present on both sides - quadratic on a table with many equal rows - and
    misses changed duplicate counts; DuckDB's approximate distinct count was too coarse, 8 %
    off, to guard it.)
    """
    a = _alias(src.signature)
    prefix = f"publish_delta_{n}"
    pub, wh = f"{prefix}_pub", src.hashes
    con.execute(
        f"create or replace temp table {pub} as "
        f"select rowid as r, hash({a}) as h from {src.published(PREVIOUS_CATALOG)} as {a}"
    )
    con.execute(
        f"create or replace temp table {prefix}_d as select h from ("
        f"select h, 1::tinyint as s from {pub} union all select h, -1::tinyint from {wh}"
        ") group by h having sum(s) <> 0"
    )
    for side, rows in (("del", pub), ("ins", wh)):
        con.execute(
            f"create or replace temp table {prefix}_{side} as "
            f"select r, h from {rows} semi join {prefix}_d using (h)"
        )
    src.rows_deleted, src.rows_inserted = (
        con.execute(f"select count(*) from {prefix}_{side}").fetchone()[0]
        for side in ("del", "ins")
    )
    src.delta = prefix
    for leftover in (pub, f"{prefix}_d"):
        con.execute(f"drop table if exists {leftover}")


def _drop_temp(con: duckdb.DuckDBPyConnection, src: _Source) -> None:
    if src.hashes:
        con.execute(f"drop table if exists {src.hashes}")
        src.hashes = ""


def publish_marts(
    warehouse_path: str | Path,
    marts_path: str | Path,
    schemas: Sequence[str] = ("marts",),
    *,
    incremental: bool = True,
    rebuild_share: float = REBUILD_SHARE,
    patch_share: float = PATCH_SHARE,
) -> PublishResult:
    """Publish every table and view of `schemas` from the warehouse into `marts_path`, atomically.

    Views are materialised as tables (the analyst file has no upstream to read from); the schema
    named like the file lands in `main` (see `published_schema`). With `incremental` (default)
    only the row delta of changed tables is applied to a copy of the last published file (see
    the module docstring): tables whose delta exceeds `patch_share` of their rows are rewritten
    whole, and a fresh file is built when the rows to write exceed `rebuild_share` of all rows.
    Returns the table row counts, what was rewritten / patched, the file size and the timing.
    Raises (leaving the previous copy untouched) when the warehouse is missing or a schema has
    nothing to publish.
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
    spill = target.with_name(f".{target.name}.{os.getpid()}.{time.time_ns()}.spill")
    try:
        # an in-memory database spills to ./.tmp by default: spill beside the target instead
        con = duckdb.connect(":memory:", config={**duckdb_config(), "temp_directory": str(spill)})
        try:
            # explicit catalog names: the new file's own name (derived from the file name) could
            # equal a schema name and make references ambiguous
            con.execute(f"attach {_sql_string(str(warehouse))} as {WAREHOUSE_CATALOG} (read_only)")
            sources = _list_sources(con, schemas, warehouse, target)
            builds = _builds(con)
            for src in sources:
                build = builds.get(_built_from(src))
                src.build_id = build.build_id if build is not None else None
            result = None
            timings = {"fingerprint": 0.0, "diff": 0.0, "hashed": 0.0}
            if not reason:
                result, reason = _publish_incremental(
                    con, warehouse, target, sources, builds, rebuild_share, patch_share, timings
                )
            if result is None:
                result = _publish_fresh(con, warehouse, target, sources, reason)
                result = dataclasses.replace(
                    result,
                    fingerprint_seconds=timings["fingerprint"],
                    diff_seconds=timings["diff"],
                    hashed_rows=int(timings["hashed"]),
                )
        finally:
            con.close()
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    result = dataclasses.replace(result, seconds=time.monotonic() - started)
    logger.info(
        "published %d tables (%d rows, %.1f MB) to %s in %.2f s: %s, %d rewritten, "
        "%d patched (-%d +%d rows)%s",
        len(result.tables),
        result.total_rows,
        result.bytes / 1e6,
        target,
        result.seconds,
        result.mode,
        len(result.rewritten),
        len(result.patched),
        result.rows_deleted,
        result.rows_inserted,
        f" ({result.reason})" if result.reason else "",
    )
    return result


class _Copier:
    """The copy of the last published file into the temp file, in a thread beside the plan
    (`shutil.copyfile` is a kernel copy without the GIL; the plan's queries release it too)."""

    def __init__(self, source: Path, dest: Path) -> None:
        self.source, self.dest = source, dest
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.seconds = 0.0

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="publish-copy", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        t0 = time.monotonic()
        try:
            shutil.copyfile(self.source, self.dest)
        except BaseException as exc:  # re-raised in the caller's thread by wait()
            self.error = exc
        self.seconds = time.monotonic() - t0

    def wait(self) -> float:
        """Copy now unless started; returns the seconds waited for it."""
        t0 = time.monotonic()
        if self.thread is None:
            self._run()
        else:
            self.thread.join()
        if self.error is not None:
            raise self.error
        return time.monotonic() - t0

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()


def _publish_incremental(
    con: duckdb.DuckDBPyConnection,
    warehouse: Path,
    target: Path,
    sources: list[_Source],
    builds: dict[str, _Build],
    rebuild_share: float,
    patch_share: float,
    timings: dict[str, float],
) -> tuple[PublishResult | None, str]:
    """Diff against the intact published file and patch a copy of it. Returns (None, why) when
    a fresh build is due (the sources then carry their fingerprints)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{time.time_ns()}.tmp")
    copier = _Copier(target, tmp)
    try:
        return _patch_copy(
            con, warehouse, target, sources, builds, rebuild_share, patch_share, timings, copier
        )
    finally:
        copier.join()  # never leave a thread writing the temp file
        _discard(tmp)


def _patch_copy(
    con: duckdb.DuckDBPyConnection,
    warehouse: Path,
    target: Path,
    sources: list[_Source],
    builds: dict[str, _Build],
    rebuild_share: float,
    patch_share: float,
    timings: dict[str, float],
    copier: _Copier,
) -> tuple[PublishResult | None, str]:
    started = time.monotonic()
    con.execute(f"attach {_sql_string(str(target))} as {PREVIOUS_CATALOG} (read_only)")
    try:
        recorded = _recorded(con, PREVIOUS_CATALOG)
        if recorded is None:
            return None, "the published file has no publish record of this format"
        used, free = _block_usage(con, PREVIOUS_CATALOG)
        if free > used:
            return None, f"compaction: {free} free vs {used} used blocks in the published file"
        published_tables = {
            f"{s}.{n}"
            for s, n in con.execute(
                "select table_schema, table_name from information_schema.tables "
                "where table_catalog = ?",
                [PREVIOUS_CATALOG],
            ).fetchall()
        }
        wanted = {s.key for s in sources}
        gone = sorted(k for k in recorded if k not in wanted)
        if any(
            s.build_id is not None
            and (recorded.get(s.key) is None or recorded[s.key].build_id != s.build_id)
            for s in sources
        ):
            # a dbt build since the last publish: the file will be patched (or rebuilt), so
            # copy it while planning; a publish that may find nothing changed copies later
            copier.start()
        fingerprints: dict[str, str | None] = {}
        same_rows = not gone  # every relation so far holds the published rows
        # tables first: when one of them changed the file is rewritten anyway, and a view is
        # then copied without being hashed (evaluating it once beats hashing it, hashing its
        # published rows and evaluating it again for the rows to insert)
        for n in sorted(range(len(sources)), key=lambda i: sources[i].is_view):
            src = sources[n]
            before = recorded.get(src.key)
            if src.is_view and not same_rows:
                src.action = "rewritten" if src.key in published_tables else "created"
                if before is not None and src.key in published_tables:
                    t0 = time.monotonic()
                    why = _plan_credits(con, src, before, builds, sources, n)
                    timings["diff"] += time.monotonic() - t0
                    if why and f"{src.schema}.{src.name}" == TOUCH_TABLE:
                        logger.info("publish: %s copied whole (%s)", src.key, why)
            else:
                why = "not a dbt incremental model"
                build = builds.get(f"{src.schema}.{src.name}")
                if before is not None and src.key in published_tables and build is not None:
                    t0 = time.monotonic()
                    why = _plan_by_key(con, src, before, build, n, patch_share)
                    timings["diff"] += time.monotonic() - t0
                if why:
                    if build is not None:
                        logger.info("publish: %s diffed by row hashes (%s)", src.key, why)
                    _plan_by_hash(con, src, n, before, published_tables, patch_share, timings)
            fingerprints[src.key] = src.fingerprint
            same_rows = same_rows and src.action == "kept"
            logger.info(
                "publish: %s %s (%d rows%s)",
                src.key,
                src.action,
                src.rows,
                f", -{src.rows_deleted} +{src.rows_inserted}"
                + (" by key" if src.key_filter else "")
                if src.action == "patched"
                else "",
            )
        if same_rows and all(
            (recorded[s.key].fingerprint, recorded[s.key].build_id) == (s.fingerprint, s.build_id)
            for s in sources
        ):
            con.execute(f"detach {PREVIOUS_CATALOG}")
            _touch_sidecar(target)  # the intact published file holds exactly these contents
            return PublishResult(
                target,
                {s.key: s.rows for s in sources},
                target.stat().st_size,
                time.monotonic() - started,
                None,
                "unchanged",
                fingerprint_seconds=timings["fingerprint"],
                diff_seconds=timings["diff"],
                hashed_rows=int(timings["hashed"]),
            ), ""
        # views copied without hashing have no row count yet: written in either case
        total = sum(s.rows for s in sources if s.fingerprint is not None or not s.is_view)
        writes = sum(
            s.rows_inserted if s.action == "patched" else s.rows
            for s in sources
            if s.action != "kept" and (s.fingerprint is not None or not s.is_view)
        )
        if total and writes > rebuild_share * total:
            return None, (
                f"{writes:,} of {total:,} rows to write (more than {rebuild_share:.0%}): "
                "a fresh file is cheaper"
            )
    finally:
        with contextlib.suppress(duckdb.Error):
            con.execute(f"detach {PREVIOUS_CATALOG}")

    tmp = copier.dest
    local = _quote(TARGET_CATALOG)
    steps = {"plan": time.monotonic() - started}
    try:
        steps["copy"] = copier.wait()  # what is left of it after the plan
        steps["copy_seconds"] = copier.seconds
        t0 = time.monotonic()
        con.execute(f"attach {_sql_string(str(tmp))} as {local}")
        for key in gone + [s.key for s in sources if s.action == "rewritten"]:
            into, name = key.split(".", 1)
            con.execute(f"drop table if exists {local}.{_quote(into)}.{_quote(name)}")
            logger.info("publish: dropping %s", key)
        if gone or any(s.action == "rewritten" for s in sources):
            con.execute(f"checkpoint {local}")  # frees the dropped blocks for reuse
        for src in sources:
            if src.action in ("rewritten", "created"):
                _create(con, src)
            elif src.action == "patched" and src.credits is not None:
                _apply_credits(con, src)
            elif src.action == "patched":
                _apply_patch(con, src)
        steps["write"] = time.monotonic() - t0
        t0 = time.monotonic()
        published_at = _write_bookkeeping(con, warehouse, sources, "incremental")
        steps["checkpoint"] = time.monotonic() - t0
        used, free = _block_usage(con, TARGET_CATALOG)
        if free > used:
            logger.info("publish: %d free vs %d used blocks after patching", free, used)
            return None, f"compaction: {free} free vs {used} used blocks after patching"
        con.execute(f"detach {local}")
        t0 = time.monotonic()
        _swap(tmp, target, fingerprints)
        steps["fsync"] = time.monotonic() - t0
    finally:
        with contextlib.suppress(duckdb.Error):
            con.execute(f"detach {local}")
        _discard(tmp)
        for src in sources:
            for suffix in ("_del", "_ins", "_keys", "_credit_keys", "_credit_keys_rows"):
                if src.delta:
                    con.execute(f"drop table if exists {src.delta}{suffix}")
    patched = [s for s in sources if s.action == "patched"]
    return PublishResult(
        target,
        {s.key: s.rows for s in sources},
        target.stat().st_size,
        time.monotonic() - started,
        published_at,
        "incremental",
        tuple(s.key for s in sources if s.action in ("rewritten", "created")),
        "",
        timings["fingerprint"],
        tuple(s.key for s in patched),
        sum(s.rows_deleted for s in patched),
        sum(s.rows_inserted for s in patched),
        timings["diff"],
        tuple(s.key for s in patched if s.key_filter),
        int(timings["hashed"]),
        {k: round(v, 3) for k, v in steps.items()},
        tuple(s.key for s in patched if s.credits is not None),
        sum(s.rows_updated for s in patched),
    ), ""


def _plan_by_hash(
    con: duckdb.DuckDBPyConnection,
    src: _Source,
    n: int,
    before: _Recorded | None,
    published_tables: set[str],
    patch_share: float,
    timings: dict[str, float],
) -> None:
    """Fingerprint `src` from its row hashes and, when it changed, diff it row by row against
    its published copy (module docstring, steps 1-3); sets its action."""
    t0 = time.monotonic()
    _hash_rows(con, src, f"publish_hashes_{n}")
    timings["fingerprint"] += time.monotonic() - t0
    timings["hashed"] += src.rows
    if src.key not in published_tables:
        src.action = "created"
    elif before is None:
        src.action = "rewritten"  # in the file but not in its record
    elif before.fingerprint == src.fingerprint:
        src.action = "kept"
    elif _signature(con, src.published(PREVIOUS_CATALOG)) != src.signature:
        src.action = "rewritten"  # columns renamed, added, removed or retyped
    elif not src.patchable:
        src.action = "rewritten"  # a column named rowid hides the row addresses
    else:
        t0 = time.monotonic()
        _diff(con, src, n)
        timings["diff"] += time.monotonic() - t0
        timings["hashed"] += before.rows
        src.prev_rows = before.rows
        delta = src.rows_deleted + src.rows_inserted
        if delta == 0:
            src.action = "kept"  # same rows: only the fingerprint was unknown
        elif delta > patch_share * (src.prev_rows + src.rows):
            src.action = "rewritten"
        else:
            src.action = "patched"
    _drop_temp(con, src)


def _plan_by_key(
    con: duckdb.DuckDBPyConnection,
    src: _Source,
    before: _Recorded,
    build: _Build,
    n: int,
    patch_share: float,
) -> str:
    """Plan the update of a dbt incremental model's published copy from dbt's own change set,
    without hashing: '' when planned (the action is set), else why the rows must be hashed.

    The published copy holds build `before.build_id`. The same build is still in the warehouse:
    kept. The warehouse build replaced exactly that one (`previous_build_id`) incrementally:
    its rows differ from it by the rows matching the pre-hook's delete predicate - the changed
    opportunities (`intermediate.incremental_changed`) and, for weekly snapshots, every row
    dated after the replaced build's as-of date - deleted there and re-inserted. The patch
    deletes the published rows matching it and inserts the warehouse rows matching it. Row
    counts must add up (published - deleted + inserted = warehouse), else hash path.
    """
    if src.is_view:
        return "a view"
    if build.build_id is None or before.build_id is None:
        return "no dbt build id recorded"
    if _signature(con, src.published(PREVIOUS_CATALOG)) != src.signature:
        return "columns changed"
    if build.build_id == before.build_id:
        rows = con.execute(f"select count(*) from {src.relation}").fetchone()[0]
        if rows != before.rows:
            return f"same build, {before.rows} rows published, {rows} in the warehouse"
        src.action, src.fingerprint, src.rows = "kept", before.fingerprint, int(rows)
        return ""
    if build.changed_opportunities is None:
        return "a full dbt build since the last publish"
    if build.previous_build_id != before.build_id:
        return "another dbt build since the last publish"
    columns = {name.lower() for name, _ in src.signature}
    weekly = build.previous_as_of_date is not None
    if KEY_COLUMN not in columns or (weekly and WEEK_COLUMN not in columns):
        return f"no {KEY_COLUMN}{' / ' + WEEK_COLUMN if weekly else ''} column"
    src.delta = f"publish_delta_{n}"
    keys = f"{src.delta}_keys"
    con.execute(
        f"create or replace temp table {keys} as select distinct {KEY_COLUMN} "
        f"from {WAREHOUSE_CATALOG}.{CHANGED_TABLE[0]}.{CHANGED_TABLE[1]} where model = ?",
        [f"{src.schema}.{src.name}"],
    )
    count = con.execute(f"select count(*) from {keys}").fetchone()[0]
    if count != build.changed_opportunities:
        return f"{count} changed ids listed, {build.changed_opportunities} in the state"
    predicate = f"{_quote(KEY_COLUMN)} in (select {KEY_COLUMN} from {keys})"
    if weekly:
        as_of = _sql_string(str(build.previous_as_of_date))
        predicate += f" or {_quote(WEEK_COLUMN)} > {as_of}::date"
    if src.has_rowid:
        # the matching rows' rowids on both sides (one scan of the key columns each): the patch
        # then deletes and fetches exactly those rows, where `where <predicate>` would make the
        # insert read every column of every warehouse row (a semi join is no scan filter)
        for side, relation in (("ins", src.relation), ("del", src.published(PREVIOUS_CATALOG))):
            con.execute(
                f"create or replace temp table {src.delta}_{side} as "
                f"select rowid as r from {relation} where {predicate}"
            )
        inserted, deleted = (
            con.execute(f"select count(*) from {src.delta}_{side}").fetchone()[0]
            for side in ("ins", "del")
        )
        rows, prev = (
            con.execute(f"select count(*) from {relation}").fetchone()[0]
            for relation in (src.relation, src.published(PREVIOUS_CATALOG))
        )
    else:
        rows, inserted = con.execute(
            f"select count(*), count(*) filter (where {predicate}) from {src.relation}"
        ).fetchone()
        prev, deleted = con.execute(
            f"select count(*), count(*) filter (where {predicate}) "
            f"from {src.published(PREVIOUS_CATALOG)}"
        ).fetchone()
    if prev != before.rows or prev - deleted + inserted != rows:
        return (
            f"row counts out of step: {prev} published - {deleted} + {inserted} "
            f"!= {rows} in the warehouse"
        )
    src.rows, src.prev_rows = int(rows), int(prev)
    src.rows_deleted, src.rows_inserted = int(deleted), int(inserted)
    if deleted + inserted == 0:
        src.action, src.fingerprint = "kept", before.fingerprint
    elif deleted + inserted > patch_share * (prev + rows):
        src.action, src.fingerprint = "rewritten", None
    else:
        src.action, src.fingerprint, src.key_filter = "patched", None, predicate
    return ""


def _plan_credits(
    con: duckdb.DuckDBPyConnection,
    src: _Source,
    before: _Recorded,
    builds: dict[str, _Build],
    sources: list[_Source],
    n: int,
) -> str:
    """The touch credits view patched from the journeys' change set instead of copied whole
    (reports/publish_credits.py): '' when planned (action set), else why not."""
    if f"{src.schema}.{src.name}" != TOUCH_TABLE:
        return "not the touch credits view"
    effects = next((s for s in sources if f"{s.schema}.{s.name}" == CHANNEL_TABLE), None)
    if effects is None or effects.is_view:
        return f"{CHANNEL_TABLE} is not published as a table"
    if _signature(con, src.published(PREVIOUS_CATALOG)) != src.signature:
        return "columns changed"
    build = builds.get(JOURNEYS_TABLE)
    src.delta = f"publish_delta_{n}"
    plan, why = plan_credits(
        con,
        warehouse=WAREHOUSE_CATALOG,
        source=_in_warehouse(*JOURNEYS_TABLE.split(".")),
        effects=effects.relation,
        have=_columns(con, *JOURNEYS_TABLE.split(".")),
        published=src.published(PREVIOUS_CATALOG),
        published_effects=effects.published(PREVIOUS_CATALOG),
        build_id=build.build_id if build else None,
        previous_build_id=build.previous_build_id if build else None,
        changed_opportunities=build.changed_opportunities if build else None,
        recorded_build_id=before.build_id,
        recorded_rows=before.rows,
        changed_table=f"{WAREHOUSE_CATALOG}.{CHANGED_TABLE[0]}.{CHANGED_TABLE[1]}",
        keys=f"{src.delta}_credit_keys",
    )
    if plan is None:
        return why
    src.rows, src.prev_rows, src.rows_inserted = plan.rows, plan.previous_rows, plan.inserted
    if plan.inserted == 0 and not plan.effects_changed and plan.rows == plan.previous_rows:
        src.action, src.fingerprint = "kept", before.fingerprint
    else:
        src.action, src.fingerprint, src.credits = "patched", None, plan
    return ""


def _apply_credits(con: duckdb.DuckDBPyConnection, src: _Source) -> None:
    """Apply `_plan_credits`' patch in the copy; counts out of step rewrite the table."""
    copy = src.published(TARGET_CATALOG)
    done = apply_credits(con, src.credits, copy)
    if isinstance(done, str):
        logger.warning("publish: %s rewritten whole (credits patch: %s)", src.key, done)
        con.execute(f"drop table {copy}")
        src.action, src.credits, src.rows_deleted, src.rows_inserted = "rewritten", None, 0, 0
        _create(con, src)
        return
    src.rows_deleted, src.rows_updated, src.rows_inserted = done
    logger.info(
        "patched %s from the journeys: -%d +%d rows, %d Markov credits updated (%d rows)",
        src.key,
        src.rows_deleted,
        src.rows_inserted,
        src.rows_updated,
        src.rows,
    )


def _create(con: duckdb.DuckDBPyConnection, src: _Source) -> None:
    con.execute(f"create schema if not exists {_quote(TARGET_CATALOG)}.{_quote(src.into)}")
    rows = con.execute(
        f"create table {src.published(TARGET_CATALOG)} as select * from {src.relation}"
    ).fetchone()[0]
    if src.fingerprint is None:
        src.rows = int(rows)
    elif rows != src.rows:  # the warehouse changed under us (runs are serialized: a bug)
        raise RuntimeError(f"{src.relation} had {src.rows} rows when hashed, {rows} when copied")
    logger.info("published %s.%s as %s (%d rows)", src.schema, src.name, src.key, rows)


def _apply_patch(con: duckdb.DuckDBPyConnection, src: _Source) -> None:
    """Delete the published rows of the delta and insert the warehouse's, in the copy."""
    copy = src.published(TARGET_CATALOG)
    if src.key_filter and not src.has_rowid:  # the rows the dbt build replaced (`_plan_by_key`)
        deleted = con.execute(f"delete from {copy} where {src.key_filter}").fetchone()[0]
        inserted = con.execute(
            f"insert into {copy} select * from {src.relation} where {src.key_filter}"
        ).fetchone()[0]
    else:
        deleted = con.execute(
            f"delete from {copy} where rowid in (select r from {src.delta}_del)"
        ).fetchone()[0]
        if src.has_rowid:
            inserted = con.execute(
                f"insert into {copy} select * from {src.relation} "
                f"where rowid in (select r from {src.delta}_ins)"
            ).fetchone()[0]
        else:
            a = _alias(src.signature)
            inserted = con.execute(
                f"insert into {copy} select * from {src.relation} as {a} "
                f"where hash({a}) in (select h from {src.delta}_ins)"
            ).fetchone()[0]
    rows = con.execute(f"select count(*) from {copy}").fetchone()[0]
    if (deleted, inserted, rows) != (src.rows_deleted, src.rows_inserted, src.rows):
        raise RuntimeError(
            f"patching {src.key}: deleted {deleted}, inserted {inserted}, {rows} rows; expected "
            f"{src.rows_deleted}, {src.rows_inserted}, {src.rows} (the published file changed "
            "under the publish?)"
        )
    logger.info(
        "patched %s: -%d +%d rows (%d rows)", src.key, src.rows_deleted, src.rows_inserted, rows
    )


def _write_bookkeeping(
    con: duckdb.DuckDBPyConnection, warehouse: Path, sources: list[_Source], mode: str
) -> datetime:
    local = _quote(TARGET_CATALOG)
    published_at = datetime.now(UTC)
    con.execute(
        f"create or replace table {local}.main.{PUBLISH_INFO_TABLE} as select "
        "?::timestamp as published_at, ? as source, ?::integer as tables, "
        "? as format, ? as mode, ?::integer as rewritten, ?::integer as patched, "
        "?::bigint as rows_deleted, ?::bigint as rows_inserted",
        [
            published_at.replace(tzinfo=None),
            str(warehouse),
            len(sources),
            FORMAT,
            mode,
            sum(s.action in ("rewritten", "created") for s in sources),
            sum(s.action == "patched" for s in sources),
            sum(s.rows_deleted for s in sources if s.action == "patched"),
            sum(s.rows_inserted for s in sources if s.action == "patched"),
        ],
    )
    con.execute(
        f"create or replace table {local}.main.{PUBLISH_TABLES_TABLE} ("
        "table_name varchar, source_table varchar, row_count bigint, fingerprint varchar, "
        "rewritten boolean, action varchar, rows_deleted bigint, rows_inserted bigint, "
        "build_id varchar, patched_by varchar)"
    )
    con.executemany(
        f"insert into {local}.main.{PUBLISH_TABLES_TABLE} values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            [
                s.key,
                f"{s.schema}.{s.name}",
                s.rows,
                s.fingerprint,
                s.action in ("rewritten", "created"),
                s.action,
                s.rows_deleted if s.action == "patched" else 0,
                s.rows_inserted if s.action == "patched" else 0,
                s.build_id,
                ("key" if s.key_filter or s.credits else "hash") if s.action == "patched" else None,
            ]
            for s in sources
        ],
    )
    con.execute(f"checkpoint {local}")
    return published_at


def _swap(tmp: Path, target: Path, fingerprints: dict[str, str | None]) -> None:
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    _write_sidecar(target, fingerprints)


def _publish_fresh(
    con: duckdb.DuckDBPyConnection,
    warehouse: Path,
    target: Path,
    sources: list[_Source],
    reason: str,
) -> PublishResult:
    """A new file with every relation copied. Sources fingerprinted by a diff attempt keep their
    fingerprints; otherwise none is computed (recorded as NULL: the next publish diffs rows)."""
    started = time.monotonic()
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{time.time_ns()}.tmp")
    local = _quote(TARGET_CATALOG)
    for src in sources:
        src.action, src.rows_deleted, src.rows_inserted = "created", 0, 0
        _drop_temp(con, src)
    try:
        con.execute(f"attach {_sql_string(str(tmp))} as {local}")
        for src in sources:
            _create(con, src)
        published_at = _write_bookkeeping(con, warehouse, sources, "full")
        con.execute(f"detach {local}")
        _swap(tmp, target, {s.key: s.fingerprint for s in sources})
    finally:
        with contextlib.suppress(duckdb.Error):
            con.execute(f"detach {local}")
        _discard(tmp)
    logger.info("publish: full rebuild (%s)", reason)
    return PublishResult(
        target,
        {s.key: s.rows for s in sources},
        target.stat().st_size,
        time.monotonic() - started,
        published_at,
        "full",
        tuple(s.key for s in sources),
        reason,
    )
