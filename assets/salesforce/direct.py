"""Raw tables written straight from Arrow pages into DuckDB, beside the fetch (no parquet round
trip): first loads appended, incremental change sets merged on Id.

A first load (the raw table is absent, or empty with exactly the planned columns) is a plain
append. Through dlt it costs a parquet write of every page in the extract step, then, after the
whole extraction, a DuckDB `INSERT ... FROM read_parquet` of every file: the load waits for the
last page of the last object. `DirectLoader` instead appends each page (with dlt's `_dlt_id` and
`_dlt_load_id` columns, the load id of the running dlt package) from a background thread while
the next pages are fetched and parsed, through a bounded queue (memory stays a few pages).

dlt stays the bookkeeper: the resource still yields the object's empty typed table, so dlt's
schema, `_dlt_loads` row, pipeline state (the cursor) and load package are exactly as on the dlt
path. The loader creates each table with dlt's DDL (same column order and types, NOT NULL on `id`
and the two dlt columns: tested against a dlt-created table), one transaction per object. The
run's direct loads are complete when the last object's pages are in (still inside dlt's extract
step, before dlt saves any cursor); a failure before undoes them all (rollback of the open
transaction, the tables created dropped, the ones filled emptied) and dlt saves no cursor, so
the rerun is a first load again. Only a hard kill between two objects leaves committed tables
without a cursor: the rerun then merges them from scratch (same result, slower). A crash after
completion but before dlt's load of the (empty) package leaves rows whose load id is not yet in
`_dlt_loads`; the rerun finishes the pending package first.

Incremental runs merge the same way (`merge` tables): an object's pages are staged in a temporary
table, then, exactly as dlt's `delete-insert` merge, the rows whose Id is staged are deleted and
the staged rows inserted, one per Id (the newest `system_modstamp`, dlt's `dedup_sort`). All
merges of a run share one transaction (a change set is small), committed with the first loads by
`commit()`: a failed run leaves every merged table as it was, as on the dlt path (nothing of the
run is applied). No dlt staging table, parquet file, normalize or load job.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Iterable
from typing import Any

import duckdb
import pyarrow as pa

from assets.salesforce.fields import CURSOR_FIELD, ObjectPlan
from sandbox.schema import snake

logger = logging.getLogger("salesops.salesforce")

LOAD_ID = "_dlt_load_id"
ROW_KEY = "_dlt_id"
NOT_NULL = ("id", ROW_KEY, LOAD_ID)
CURSOR = snake(CURSOR_FIELD)
MAY_EXIST = "_sf_may_exist"  # optional staged column: False = the Id cannot be stored yet
ROW_GROUP = 122_880  # DuckDB's row group: inserts of whole ones are written once, compressed
# rows per insert: 1 whole row group. With 4 per insert DuckDB writes them in parallel (the
# loader thread is busy less) but leaves partial row groups that the final checkpoint rewrites:
# 4.4-6.7 s at the close instead of 0.17 s (Task + OpportunityHistory + Account + User, medium)
BATCH_ROW_GROUPS = 1
_STOP = object()
_FINISH = "finish"


def dlt_columns(plan: ObjectPlan) -> list[str]:
    """The raw table's columns in dlt's order: the planned fields, `_dlt_id`, `_dlt_load_id`."""
    return [*plan.columns, ROW_KEY, LOAD_ID]


def table_schema(plan: ObjectPlan) -> pa.Schema:
    """Arrow schema of the raw table (the page schema plus the two dlt columns)."""
    return plan.arrow_schema.append(pa.field(ROW_KEY, pa.string())).append(
        pa.field(LOAD_ID, pa.string())
    )


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class DirectLoader:
    """Appends Arrow pages into `dataset` tables from one background thread.

    `put(plan, page, load_id)` queues a page (blocks while `max_pages` are waiting: memory stays
    bounded and the fetch slows to the load's pace); `finish(plan, ...)` ends an object (its
    transaction is committed: one open transaction over a whole run kept its written blocks in
    memory, +1.5 GB over 20 M rows, measured); `commit()` waits for every queued object: the run's
    direct loads are then complete. `close()` stops the thread and, unless complete, undoes them:
    rolls back the open transaction, drops the tables it created and empties the ones it filled
    (they were empty), so a failed run leaves the warehouse as it found it. Errors of the thread
    are raised by the next `put` / `finish` / `commit`."""

    def __init__(
        self,
        conn: duckdb.DuckDBPyConnection,
        dataset: str,
        max_pages: int = 3,
        log: Any = None,
        merge: Iterable[str] = (),
    ) -> None:
        self.dataset = dataset
        # tables merged on id (incremental runs) rather than appended: one transaction for all,
        # on a cursor of their own (first loads commit per object on `_cur`)
        self._merge = frozenset(merge)
        self._mcur = conn.cursor() if self._merge else None
        self._mbegan = False
        self._staged = 0  # rows in the staging table of the object being merged
        self.replaced = 0  # existing rows replaced by merges (changed or deleted records)
        self.delete_skipped = 0  # merges of new records only: no delete (no id column scan)
        self.log = log or logger
        self._cur = conn.cursor()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pages)
        self._error: BaseException | None = None
        self._created: set[str] = set()
        self._pending: list[pa.Table] = []  # rows not yet inserted: less than a row group
        self._pending_rows = 0
        self._open: str | None = None  # the object whose pages are coming in
        self._began = False
        self._committed = False  # commit(): every object's rows are in and committed
        self._filled: dict[str, bool] = {}  # table -> created by us (else: was empty)
        self.rows: dict[str, int] = {}
        self.seconds = 0.0  # busy time of the thread (inserts)
        self._thread = threading.Thread(target=self._run, name="sf-direct-load", daemon=True)
        self._thread.start()

    # -- producer side (the dlt extract thread) ------------------------------------------------
    def put(self, plan: ObjectPlan, page: pa.Table, load_id: str) -> None:
        """Queue one page of `plan` (pages of one object come one after the other)."""
        self._send((plan, page, load_id))

    def finish(self, plan: ObjectPlan, load_id: str) -> None:
        """The object's pages are all in: write the rest (creates the table even if empty)."""
        self._send((plan, _FINISH, load_id))

    def _send(self, item: Any) -> None:
        self._raise()
        while True:
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                self._raise()
                if not self._thread.is_alive():
                    raise RuntimeError("the direct loader thread stopped") from self._error

    def commit(self) -> None:
        """Wait until every queued object is written and committed (raises the thread's
        error); from then on `close()` keeps the rows."""
        if self._committed:
            return
        self._queue.put(_STOP)
        self._thread.join()
        self._raise()
        if self._began:  # pages put without `finish`
            self._cur.commit()
            self._began = False
        if self._mbegan:
            self._mcur.commit()
            self._mbegan = False
        self._committed = True
        if self.rows:
            self.log.info(
                "written straight into DuckDB: %s rows in %d tables (%d merged on id, %d of "
                "them new records only, %s existing rows replaced; %.1fs of writes beside the "
                "fetch)",
                f"{sum(self.rows.values()):,}",
                len(self.rows),
                len(self._merge & set(self.rows)),
                self.delete_skipped,
                f"{self.replaced:,}",
                self.seconds,
            )

    def close(self) -> None:
        """Stop the thread; roll back anything not committed (a failed run leaves no rows)."""
        if self._thread.is_alive():
            self._error = self._error or RuntimeError("closed")
            try:
                while True:  # unblock a full queue
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._queue.put(_STOP)
            self._thread.join(timeout=600)
        if not self._committed and (self._began or self._filled or self._mbegan):
            self._undo()
        self._cur.close()
        if self._mcur is not None:
            self._mcur.close()

    def _undo(self) -> None:
        try:
            if self._mbegan:  # every merge of the run
                self._mcur.rollback()
                self._mbegan = False
            if self._began:
                self._cur.rollback()
                self._began = False
            for table, created in self._filled.items():
                name = f"{_q(self.dataset)}.{_q(table)}"
                self._cur.execute(
                    f"drop table if exists {name}" if created else f"delete from {name}"
                )
        except duckdb.Error as exc:  # the connection may be gone; the rerun merges then
            self.log.warning("could not undo the direct first loads of this failed run: %s", exc)
            return
        self.log.warning(
            "direct loads of this failed run undone (%s): the rerun loads them again",
            ", ".join(sorted(set(self._filled) | (self._merge & set(self.rows))))
            or "nothing committed yet",
        )

    # -- the thread ----------------------------------------------------------------------------
    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP or self._error is not None:
                return
            plan, page, load_id = item
            try:
                started = time.monotonic()
                self._insert(plan, page, load_id)
                self.seconds += time.monotonic() - started
            except BaseException as exc:  # noqa: BLE001  handed to the producer
                self._error = exc
                return

    def _begin(self) -> None:
        if not self._began:
            self._cur.begin()
            self._began = True
            self._cur.execute(f"create schema if not exists {_q(self.dataset)}")

    def _create(self, plan: ObjectPlan) -> None:
        """Create the table (dlt's DDL) if absent; check an existing one has dlt's columns."""
        table = f"{_q(self.dataset)}.{_q(plan.table_name)}"
        have = [
            r[0]
            for r in self._cur.execute(
                "select column_name from information_schema.columns where table_schema = ? "
                "and table_name = ? order by ordinal_position",
                [self.dataset, plan.table_name],
            ).fetchall()
        ]
        if not have:
            self._scan(
                "_sf_empty",
                table_schema(plan).empty_table(),
                f"create table {table} as select * from _sf_empty",
            )
            for col in NOT_NULL:
                self._cur.execute(f"alter table {table} alter column {_q(col)} set not null")
        elif have != dlt_columns(plan):
            raise RuntimeError(
                f"{plan.name}: table {self.dataset}.{plan.table_name} has columns {have}, "
                f"expected {dlt_columns(plan)}; it should have gone through dlt"
            )
        self._created.add(plan.table_name)
        self._filled.setdefault(plan.table_name, not have)

    def _scan(
        self,
        name: str,
        tbl: pa.Table,
        sql: str,
        params: list | None = None,
        cur: duckdb.DuckDBPyConnection | None = None,
    ) -> None:
        """Run `sql` reading the Arrow table `tbl` as `name`; a failed statement aborts the
        transaction, so the unregister then fails too: the statement's error is raised."""
        cur = cur or self._cur
        cur.register(name, tbl)
        try:
            cur.execute(sql, params)
        except duckdb.Error:
            with contextlib.suppress(duckdb.Error):
                cur.unregister(name)
            raise
        cur.unregister(name)

    def _insert(self, plan: ObjectPlan, page: pa.Table | str, load_id: str) -> None:
        """Insert whole row groups once complete; the rest at `finish`: pages inserted as they
        come leave a partial row group at each page boundary, which DuckDB rewrites at commit
        (~20% more insert CPU, measured on Task + OpportunityHistory)."""
        if self._open not in (None, plan.table_name):
            raise RuntimeError(
                f"pages of {plan.name} arrived before {self._open} was finished: direct loads "
                "need objects one after another (dlt EXTRACT__NEXT_ITEM_MODE=fifo)"
            )
        self._open = plan.table_name
        if plan.table_name in self._merge:
            self._merge_page(plan, page, load_id)
            return
        self._begin()
        if plan.table_name not in self._created:
            self._create(plan)
        if isinstance(page, str):  # _FINISH
            self._open = None
            if self._pending_rows:
                self._write(plan, pa.concat_tables(self._pending), load_id)
            self._pending, self._pending_rows = [], 0
            self._cur.commit()
            self._began = False
            return
        if not page.num_rows:
            return
        if self._pending and page.schema != self._pending[0].schema:  # cannot be concatenated
            self._write(plan, pa.concat_tables(self._pending), load_id)
            self._pending, self._pending_rows = [], 0
        self._pending.append(page)
        self._pending_rows += page.num_rows
        if self._pending_rows >= ROW_GROUP * BATCH_ROW_GROUPS:
            rows = pa.concat_tables(self._pending)
            whole = rows.num_rows // ROW_GROUP * ROW_GROUP
            self._write(plan, rows.slice(0, whole), load_id)
            rest = rows.slice(whole)
            self._pending, self._pending_rows = [rest], rest.num_rows

    def _merge_page(self, plan: ObjectPlan, page: pa.Table | str, load_id: str) -> None:
        """Stage a page of a merged object; at `finish`, dlt's delete-insert merge of the
        staged rows (same statements as dlt's `SqlMergeFollowupJob` for a root table with a
        primary key and no nested tables)."""
        cur = self._mcur
        stage = "_sf_merge_stage"
        if isinstance(page, str):  # _FINISH
            self._open = None
            if not self._staged:
                return
            table = f"{_q(self.dataset)}.{_q(plan.table_name)}"
            have = [
                r[0]
                for r in cur.execute(
                    "select column_name from information_schema.columns where table_schema = ? "
                    "and table_name = ? order by ordinal_position",
                    [self.dataset, plan.table_name],
                ).fetchall()
            ]
            if have != dlt_columns(plan):
                raise RuntimeError(
                    f"{plan.name}: table {self.dataset}.{plan.table_name} has columns {have}, "
                    f"expected {dlt_columns(plan)}; it should have gone through dlt"
                )
            # dlt: ORDER BY the dedup_sort column (desc), else (SELECT NULL): any row of the Id
            order = f"{_q(CURSOR)} desc" if plan.has_cursor else "(select null)"
            # rows flagged as not possibly stored (new records, see source._may_exist) need no
            # delete: a change set of new records only does not read the table's id column
            staged = [r[0] for r in cur.execute(f"describe {stage}").fetchall()]
            flag = f" and s.{MAY_EXIST}" if MAY_EXIST in staged else ""
            maybe = cur.execute(f"select count(*) from {stage} as s where true{flag}").fetchone()[0]
            if maybe:
                row = cur.execute(
                    f"delete from {table} as d where exists "
                    f"(select 1 from {stage} as s where d.id = s.id{flag})"
                ).fetchone()
                self.replaced += int(row[0]) if row else 0
            else:
                self.delete_skipped += 1
            cols = ", ".join(_q(c) for c in dlt_columns(plan))
            cur.execute(
                f"insert into {table} ({cols}) select {cols} from (select row_number() over "
                f"(partition by id order by {order}) as _dlt_dedup_rn, * from {stage}) "
                "where _dlt_dedup_rn = 1"
            )
            cur.execute(f"drop table {stage}")
            self.rows[plan.table_name] = self.rows.get(plan.table_name, 0) + self._staged
            self._staged = 0
            return
        if not page.num_rows:
            return
        if not self._mbegan:
            cur.begin()
            self._mbegan = True
        select = f"select *, $1::varchar as {LOAD_ID} from _sf_page"
        if self._staged:
            sql = f"insert into {stage} by name {select}"
        else:
            sql = f"create temp table {stage} as {select}"
        self._scan("_sf_page", page, sql, [load_id], cur)
        self._staged += page.num_rows

    def _write(self, plan: ObjectPlan, page: pa.Table, load_id: str) -> None:
        self._scan(
            "_sf_page",
            page,
            f"insert into {_q(self.dataset)}.{_q(plan.table_name)} by name "
            f"select *, $1::varchar as {LOAD_ID} from _sf_page",
            [load_id],
        )
        self.rows[plan.table_name] = self.rows.get(plan.table_name, 0) + page.num_rows


def merge_eligible(plans: Iterable[ObjectPlan], columns: dict[str, list[str]]) -> frozenset[str]:
    """Objects whose incremental change set can be merged directly: the table exists with
    exactly dlt's columns (a table lacking a configured column goes through dlt, which adds it;
    so does one with columns dlt no longer plans)."""
    return frozenset(p.name for p in plans if columns.get(p.table_name) == dlt_columns(p))


def direct_eligible(
    plans: Iterable[ObjectPlan], columns: dict[str, list[str]], empty: set[str]
) -> frozenset[str]:
    """Objects whose first load can go direct: the table is absent, or empty with exactly dlt's
    columns (`columns`: table -> its columns in order; `empty`: tables holding no row)."""
    out = set()
    for plan in plans:
        have = columns.get(plan.table_name)
        if have is None or (plan.table_name in empty and have == dlt_columns(plan)):
            out.add(plan.name)
    return frozenset(out)
