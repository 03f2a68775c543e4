"""Incremental evaluation: validate only the rows that can have changed, with exactly the results
of a full evaluation.

Raw Salesforce tables are merged on Id by dlt, so a new or changed row carries the id of the
load that wrote it (`_dlt_load_id`) and the rows of earlier loads never change; marketing rows
are replaced file by file and carry the file's name and load time. The state of the last
evaluation (`quality.eval_state`, `quality.row_failures`) says which loads were evaluated and
which rows failed which rule. The next evaluation validates the **candidate rows**:

1. rows of loads not evaluated before (new or changed rows, and rows with no load id);
2. rows that failed any rule last time (they may pass now: fixed parent, later as_of);
3. for each foreign-key rule whose parent table changed since (its load ids or their row counts
   differ), every child row that references a parent row of the parent's new loads (a parent
   deleted this week arrives in a new load with is_deleted and orphans unchanged children); a
   key-only scan of the child's foreign-key column. When none of the parent loads seen last
   time is left (a full reload) or the parent has no load ids, every child row without a live
   parent (key-only anti-join over the whole child);
4. closure over window rules (unique Id, duplicate person, one ad_spend row per key): every live
   row of a partition that holds a candidate, so window functions computed over the candidates
   see whole partitions.

Contract (dlt's merge on Id): the rows of a load never change in place and leave a table only
when a newer load replaces them by Id (or a full reload replaces them all). A raw row edited or
deleted by hand without a new load id is not seen: evaluate in full then
(SALESOPS_QUALITY_INCREMENTAL=0, or `python -m quality_checks`, which is full by default).

Why nothing else can fail: a row outside the candidates is unchanged since the last evaluation
and passed every rule then. Row rules read the row only (their rule set is unchanged: the
signature; upper bounds that grow with as_of only pass more rows); a foreign key can only break
when the parent table changed (3); a window result changes only when its partition gained a live
row (a new row, 1) or lost one, which only turns failing rows into passing ones (2). So every
rule's failures, the failing rows, samples and quarantine equal a full evaluation's, and the
checked counts come from one cheap pass over every live row. The state is replaced in the same
transaction as the quarantine.

Falls back to a full evaluation (and says why) when there is no state, the rule set or the
state version changed, as_of moved back, no previously evaluated load is left (a full reload),
or a previously evaluated load grew (not dlt's merge).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass, field

import duckdb

from quality_checks import partition_keys
from quality_checks.rules import (
    FRESH,
    UNIQUE,
    Rule,
    TableSpec,
    lit,
    quote,
    references_fail_sql,
)

log = logging.getLogger(__name__)

# Bump when the state's meaning or the candidate logic changes: the next run is then full.
STATE_VERSION = 1
SCHEMA = "quality"
PARENT_LOAD_COLUMN = "_dlt_load_id"


@dataclass
class Plan:
    mode: str  # "full" | "incremental"
    reason: str
    signature: str
    load_counts: dict[str, int] = field(default_factory=dict)
    parents: dict[str, dict[str, int] | None] = field(default_factory=dict)
    new_loads: list[str] = field(default_factory=list)
    scan_fk: list[str] = field(default_factory=list)  # FK rules needing the whole-table scan
    # FK rules whose parent got new loads: rule -> the parent's new load ids
    fk_parent_loads: dict[str, list[str]] = field(default_factory=dict)
    # FK rules whose parent got new loads: rule -> parent rows of those loads that are not live
    fk_gone: dict[str, int] = field(default_factory=dict)
    candidates: int = 0
    new_rows: int = 0
    # checked counts of the last evaluation, reusable when no evaluated row left the table
    # (then checked = last + the new rows'): {"rows": n, "rules": {...}, "dims": {...}}
    reuse_checked: dict | None = None
    # what the incremental evaluation did to quality.partition_keys (kept/updated/rebuilt)
    keys_action: str = ""

    @property
    def incremental(self) -> bool:
        return self.mode == "incremental"

    def describe(self, rows: int | None = None) -> str:
        if not self.incremental:
            return f"full ({self.reason})"
        of = f" of {rows:,}" if rows is not None else ""
        fk = f"; whole-table key check: {', '.join(self.scan_fk)}" if self.scan_fk else ""
        if self.fk_parent_loads:
            gone = [f"{k} ({n:,} parents gone)" for k, n in self.fk_gone.items()]
            fk += f"; children of changed parents: {', '.join(gone or self.fk_parent_loads)}"
        if self.keys_action == "rebuilt":
            fk += "; partition keys rebuilt"
        return (
            f"incremental: {len(self.new_loads)} new load(s), {self.new_rows:,} new live rows, "
            f"{self.candidates:,} candidate rows{of} validated{fk}"
        )


def signature(spec: TableSpec) -> str:
    """Hash of what decides a row's result: live filter, keys and every row rule's SQL.

    Upper bounds that grow with as_of (`Rule.as_of_bound`) are left out (as_of may only move
    forward between incremental runs); freshness is table-level and re-evaluated every run.
    """
    parts: list = [STATE_VERSION, spec.live_filter, spec.row_key, spec.record_id, spec.load_id_sql]
    for r in spec.rules:
        if r.kind == FRESH:
            continue
        bound = r.as_of_bound
        parts.append(
            [
                r.name,
                r.kind,
                r.dimension,
                r.column,
                r.hard,
                r.soft,
                r.check_sql,
                None if bound else r.fail_sql,
                None if bound else r.reason_sql,
                str(r.gx_args.get("min_value")) if bound else None,
                r.partition_sql,
                r.needs_table,
            ]
        )
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:32]


def load_counts(
    con: duckdb.DuckDBPyConnection,
    qualified: str,
    load_sql: str,
    load_columns: tuple[str, ...] = (),
) -> dict[str, int]:
    """Rows per load id (all rows, deleted included; NULL load ids under the key "").

    `load_columns`: the columns `load_sql` is computed from; the rows are grouped by them first
    and the expression is evaluated once per group (a marketing file's `name @ loaded_at` is
    a string built from a timestamp: per row, that is most of the cost on 17 M touchpoints).
    """
    src = qualified
    if load_columns:
        cols = ", ".join(quote(c) for c in load_columns)
        src = f"(SELECT {cols}, count(*) AS __n FROM {qualified} GROUP BY ALL)"
    n = "sum(__n)" if load_columns else "count(*)"
    out: dict[str, int] = {}
    for k, c in con.execute(
        f"SELECT CAST({load_sql} AS VARCHAR) AS l, {n} FROM {src} AS s GROUP BY l"
    ).fetchall():
        out[k if k is not None else ""] = int(c)
    return out


def _parent_counts(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    columns: dict[tuple[str, str], set[str]] | None = None,
    cache: dict[str, dict[str, int] | None] | None = None,
) -> dict[str, dict[str, int] | None]:
    """Rows per load id of every parent table (None: no load id column). `columns` (the
    catalog) and `cache` (parents counted earlier in the same run) save queries."""
    out: dict[str, dict[str, int] | None] = {}
    cache = cache if cache is not None else {}
    for r in spec.rules:
        if not r.needs_table:
            continue
        label = ".".join(r.needs_table)
        if label in out:
            continue
        if label not in cache:
            if columns is not None:
                has = PARENT_LOAD_COLUMN in columns.get(r.needs_table, set())
            else:
                has = con.execute(
                    "SELECT count(*) FROM information_schema.columns WHERE table_schema = ? AND "
                    "table_name = ? AND column_name = ?",
                    [*r.needs_table, PARENT_LOAD_COLUMN],
                ).fetchall()[0][0]
            qualified = f"{quote(r.needs_table[0])}.{quote(r.needs_table[1])}"
            cache[label] = load_counts(con, qualified, quote(PARENT_LOAD_COLUMN)) if has else None
        out[label] = cache[label]
    return out


def _read_state(
    con: duckdb.DuckDBPyConnection,
    label: str,
    columns: dict[tuple[str, str], set[str]] | None = None,
) -> dict | None:
    names = ("eval_state", "row_failures", "incremental_candidates")
    if columns is not None:
        have = sum((SCHEMA, n) in columns for n in names)
    else:
        have = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND "
            "table_name IN ('eval_state', 'row_failures', 'incremental_candidates')",
            [SCHEMA],
        ).fetchall()[0][0]
    if have < 3:
        return None
    try:
        row = con.execute(
            f"SELECT signature, as_of, load_ids, parents, checked FROM {SCHEMA}.eval_state "
            'WHERE "table" = ?',
            [label],
        ).fetchall()
    except duckdb.BinderException:  # state of an older layout: start over with a full run
        return None
    if not row:
        return None
    sig, as_of, loads, parents, checked = row[0]
    return {
        "signature": sig,
        "as_of": as_of,
        "load_counts": json.loads(loads or "{}"),
        "parents": json.loads(parents or "{}"),
        "checked": json.loads(checked) if checked else None,
    }


def plan(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    columns: set[str],
    as_of: dt.datetime,
    enabled: bool = True,
    catalog: dict[tuple[str, str], set[str]] | None = None,
    parent_cache: dict[str, dict[str, int] | None] | None = None,
) -> Plan:
    """Decide full or incremental for `spec` (its rules already restricted to applicable ones).

    `catalog` (every table's columns) and `parent_cache` (parents' load counts of this run)
    save queries.
    """
    sig = signature(spec)
    if spec.load_id_sql is None or not set(spec.load_columns) <= columns:
        return Plan("full", "table has no load id column", sig)
    used = tuple(c for c in spec.load_columns if quote(c) in spec.load_id_sql)
    current = load_counts(con, spec.qualified, spec.load_id_sql, used)
    parents = _parent_counts(con, spec, catalog, parent_cache)
    p = Plan("full", "", sig, current, parents)
    state = _read_state(con, spec.label, catalog) if enabled else None
    if not enabled:
        p.reason = "incremental evaluation disabled"
    elif state is None:
        p.reason = "no state of an earlier evaluation"
    elif state["signature"] != sig:
        p.reason = "rule set or state version changed"
    elif state["as_of"] is None or as_of < state["as_of"]:
        p.reason = f"as_of moved back (last evaluation at {state['as_of']})"
    else:
        seen: dict[str, int] = state["load_counts"]
        grew = [k for k, n in current.items() if k in seen and k != "" and n > seen[k]]
        if seen and current and not any(k in seen and k != "" for k in current):
            p.reason = "no previously evaluated load is left (full reload)"
        elif grew:
            p.reason = f"load {grew[0]} has more rows than when it was evaluated"
        else:
            p.mode, p.reason = "incremental", "state matches"
            p.new_loads = sorted(k for k in current if k not in seen or k == "")
            departed = sum(max(0, n - current.get(k, 0)) for k, n in seen.items())
            if departed == 0 and "" not in current and state["checked"]:
                p.reuse_checked = state["checked"]
            for r in spec.rules:
                if not r.needs_table:
                    continue
                label = ".".join(r.needs_table)
                now, then = parents.get(label), state["parents"].get(label)
                if now is not None and now == then:
                    continue  # parent unchanged: only candidate children can break
                if now is None or not then or "" in now or not any(k in now for k in then):
                    p.scan_fk.append(r.name)  # unknown or fully reloaded parent: whole child
                else:  # children of the parent rows the new parent loads wrote (or deleted)
                    p.fk_parent_loads[r.name] = sorted(k for k in now if k not in then)
    return p


def new_rows_source(spec: TableSpec, p: Plan) -> str:
    """The live rows of the new loads (for the checked counts when `p.reuse_checked`)."""
    loads = ", ".join(lit(x) for x in p.new_loads if x) or "NULL"
    return (
        f"SELECT * FROM {spec.qualified} WHERE {spec.live_filter} AND "
        f"CAST({spec.load_id_sql} AS VARCHAR) IN ({loads})"
    )


def windowed(spec: TableSpec, restrict_parents: bool = False) -> TableSpec:
    """The spec for evaluating candidates: the unique-Id rule as a window over its partition.

    On a partition-closed candidate set `count(*) OVER (PARTITION BY id) > 1` is exactly the
    full rule `id IN (SELECT id ... GROUP BY id HAVING count(*) > 1)` without the whole-table
    aggregate. `restrict_parents` (the candidates are materialized in `candidate_rows_table`):
    foreign keys look up only the parent Ids the candidates reference.
    """
    rules = []
    for r in spec.rules:
        if r.needs_table and r.parent_live is not None and r.column and restrict_parents:
            # the parent's Ids only for the foreign keys among the (materialized) candidates
            r = dataclasses.replace(
                r,
                fail_sql=references_fail_sql(
                    r.column, r.needs_table, r.parent_live, candidate_rows_table(spec)
                ),
            )
        if r.kind == UNIQUE and r.partition_sql:
            r = dataclasses.replace(
                r,
                fail_sql=(
                    f"{r.partition_sql} IS NOT NULL AND "
                    f"count(*) OVER (PARTITION BY {r.partition_sql}) > 1"
                ),
                gx_args={**r.gx_args, "_window": True, "_columns": [r.column]},
            )
        rules.append(r)
    return spec.with_rules(rules)


def candidate_source(spec: TableSpec, p: Plan | None = None, projection: str = "*") -> str:
    """The candidate rows (what the SQL pass and GX's query asset validate incrementally)."""
    if p is not None and p.candidates == 0:
        return f"SELECT {projection} FROM {spec.qualified} WHERE false"
    key = f"CAST({spec.row_key} AS VARCHAR)"
    # rows without a key cannot be found again: always validated (a separate branch keeps the
    # first one a plain semi-join)
    return (
        f"SELECT {projection} FROM {spec.qualified} WHERE {spec.live_filter} AND {key} IN "
        f'(SELECT row_key FROM {SCHEMA}.incremental_candidates WHERE "table" = '
        f"{lit(spec.label)}) UNION ALL SELECT {projection} FROM {spec.qualified} WHERE "
        f"{spec.live_filter} AND {key} IS NULL"
    )


def candidate_rows_table(spec: TableSpec) -> str:
    """The committed table holding the candidate rows of one evaluation (GX reads it)."""
    return f"{SCHEMA}.{quote('candidate_rows__' + spec.schema + '__' + spec.table)}"


def materialize_candidates(con: duckdb.DuckDBPyConnection, spec: TableSpec, p: Plan) -> str:
    """Copy the candidate rows into `candidate_rows_table` (committed) and return a query over
    it: GX's queries, the SQL pass and the checked counts then read the few candidate rows
    instead of looking them up by key in the whole table each time."""
    t = candidate_rows_table(spec)
    if not p.candidates:
        con.execute(f"CREATE OR REPLACE TABLE {t} AS {candidate_source(spec, p)}")
    else:
        # Find the rows by their key reading the key columns only, then fetch them whole by
        # rowid: a semi-join projecting every column would read the whole wide table.
        rowids = "__salesops_candidate_rowids"
        by_key = candidate_source(spec, p, projection="rowid AS r")
        con.execute(f"CREATE OR REPLACE TEMP TABLE {rowids} AS {by_key}")
        con.execute(
            f"CREATE OR REPLACE TABLE {t} AS SELECT * FROM {spec.qualified} "
            f"WHERE rowid IN (SELECT r FROM {rowids})"
        )
        con.execute(f"DROP TABLE {rowids}")
    if p.new_loads:  # every live row of the new loads is a candidate (rows without one too)
        null_loads = f" OR {spec.load_id_sql} IS NULL" if "" in p.new_loads else ""
        named = ", ".join(lit(x) for x in p.new_loads if x) or "NULL"
        p.new_rows = int(
            con.execute(
                f"SELECT count(*) FROM {t} WHERE CAST({spec.load_id_sql} AS VARCHAR) IN "
                f"({named}){null_loads}"
            ).fetchall()[0][0]
        )
    return f"SELECT * FROM {t}"


def new_rows_of(spec: TableSpec, p: Plan, source: str) -> str:
    """The live rows of the new loads taken from `source`, the materialized candidate rows
    (they hold every live row of the new loads, each once): = `new_rows_source`."""
    loads = ", ".join(lit(x) for x in p.new_loads if x) or "NULL"
    return f"SELECT * FROM ({source}) AS c WHERE CAST({spec.load_id_sql} AS VARCHAR) IN ({loads})"


def write_candidates(con: duckdb.DuckDBPyConnection, spec: TableSpec, p: Plan) -> int:
    """Fill quality.incremental_candidates for the table (committed: GX reads it); returns
    the number of candidate rows."""
    label = lit(spec.label)
    key = f"CAST({spec.row_key} AS VARCHAR)"
    cand = f'{SCHEMA}.incremental_candidates WHERE "table" = {label}'
    live = spec.live_filter
    con.execute(f"DELETE FROM {cand}")
    parts = []
    if p.new_loads:
        con.execute("CREATE OR REPLACE TEMP TABLE __salesops_new_loads (l VARCHAR)")
        con.executemany(
            "INSERT INTO __salesops_new_loads VALUES (?)", [[x] for x in p.new_loads if x]
        )
        null_loads = f" OR {spec.load_id_sql} IS NULL" if "" in p.new_loads else ""
        parts.append(
            f"SELECT {key} AS k FROM {spec.qualified} WHERE {live} AND "
            f"(CAST({spec.load_id_sql} AS VARCHAR) IN (SELECT l FROM __salesops_new_loads)"
            f"{null_loads})"
        )
    parts.append(f'SELECT row_key AS k FROM {SCHEMA}.row_failures WHERE "table" = {label}')
    by_name = {r.name: r for r in spec.rules}
    for name in p.scan_fk:
        r = by_name[name]
        parts.append(
            f"SELECT {key} AS k FROM {spec.qualified} WHERE {live} AND ({r.fail_sql}) "
            f"AND ({r.check_sql})"
        )
    gone_tables: dict[tuple, tuple[str, int]] = {}
    for name, loads in p.fk_parent_loads.items():
        r = by_name[name]
        parent = f"{quote(r.needs_table[0])}.{quote(r.needs_table[1])}"
        in_loads = (
            f"CAST({quote(PARENT_LOAD_COLUMN)} AS VARCHAR) "
            f"IN ({', '.join(lit(x) for x in loads) or 'NULL'})"
        )
        if r.parent_live is None:  # which parent rows count is unknown: all changed ones
            changed = f'SELECT "id" FROM {parent} WHERE {in_loads}'
        elif r.parent_live.strip().lower() == "true":
            continue  # every parent row counts: a merged parent row never breaks a child
        else:
            # A child that passed references a live parent row. Under dlt's merge a parent
            # row leaves only when a newer load replaces it by Id, so the child can only
            # break through a parent row of the new loads that is not live (deleted).
            gkey = (r.needs_table, r.parent_live, tuple(loads))
            if gkey not in gone_tables:
                tmp = f"__salesops_gone_{len(gone_tables)}"
                con.execute(
                    f'CREATE OR REPLACE TEMP TABLE {tmp} AS SELECT DISTINCT "id" FROM {parent} '
                    f'WHERE {in_loads} AND "id" IS NOT NULL AND NOT coalesce({r.parent_live}, '
                    "false)"
                )
                n = int(con.execute(f"SELECT count(*) FROM {tmp}").fetchall()[0][0])
                gone_tables[gkey] = (tmp, n)
            tmp, n = gone_tables[gkey]
            p.fk_gone[name] = n
            if not n:
                continue
            changed = f'SELECT "id" FROM {tmp}'
        parts.append(
            f"SELECT {key} AS k FROM {spec.qualified} WHERE {live} AND "
            f"{quote(r.column)} IN ({changed})"
        )
    con.execute(
        f"INSERT INTO {SCHEMA}.incremental_candidates SELECT DISTINCT {label}, k FROM ("
        + " UNION ALL ".join(parts)
        + ") WHERE k IS NOT NULL"
    )
    if p.new_loads:
        con.execute("DROP TABLE IF EXISTS __salesops_new_loads")
    for tmp, _ in gone_tables.values():
        con.execute(f"DROP TABLE IF EXISTS {tmp}")
    p.keys_action = partition_keys.maintain(con, spec, p.new_loads, p.load_counts)
    _close_partitions(con, spec)
    p.candidates = int(con.execute(f"SELECT count(*) FROM {cand}").fetchall()[0][0])
    return p.candidates


def _close_partitions(con: duckdb.DuckDBPyConnection, spec: TableSpec) -> None:
    """Add every live row of a window rule's partitions that hold a candidate, until closed."""
    # a partition by the row key itself is closed already (candidates are taken by key)
    rules: list[Rule] = [
        r for r in spec.rules if r.partition_sql and r.partition_sql != spec.row_key
    ]
    label = lit(spec.label)
    key = f"CAST({spec.row_key} AS VARCHAR)"
    cand = f'SELECT row_key FROM {SCHEMA}.incremental_candidates WHERE "table" = {label}'
    if not rules or not con.execute(f"SELECT count(*) FROM ({cand})").fetchall()[0][0]:
        return  # no candidate: no partition to close
    kept = {r.name for r in partition_keys.kept_rules(spec)}
    pending = list(rules)
    while pending:
        r = pending.pop(0)
        part = r.partition_sql
        if r.name in kept:  # the partition values kept up to date in quality.partition_keys
            sql = partition_keys.close_sql(spec, r, cand)
        else:
            sql = (
                f"INSERT INTO {SCHEMA}.incremental_candidates SELECT DISTINCT {label}, {key} "
                f"FROM {spec.qualified} WHERE {spec.live_filter} AND {key} IS NOT NULL AND "
                f"{part} IN (SELECT {part} FROM {spec.qualified} WHERE {spec.live_filter} AND "
                f"{key} IN ({cand})) AND {key} NOT IN ({cand})"
            )
        added = con.execute(sql).fetchall()[0][0]
        if added:
            pending = [x for x in rules if x is not r]


def save_state(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    p: Plan,
    fail_table: str,
    as_of: dt.datetime,
    rows: int,
    run_id: str,
    evaluated_at: dt.datetime,
    checked: dict | None = None,
) -> None:
    """Replace the table's state by this evaluation's (inside the caller's transaction)."""
    label = spec.label
    con.execute(f'DELETE FROM {SCHEMA}.row_failures WHERE "table" = ?', [label])
    clear_candidates(con, spec)
    if not p.incremental and spec.load_id_sql is not None:
        partition_keys.rebuild(con, spec)  # the incremental runs maintain them from here
    rules = [r for r in spec.rules if r.kind != FRESH]
    if rules:
        selects = " UNION ALL ".join(
            f"SELECT __key, __rid, __load, {lit(r.name)} FROM {fail_table} WHERE __f{i}"
            for i, r in enumerate(rules)
        )
        con.execute(f"INSERT INTO {SCHEMA}.row_failures SELECT {lit(label)}, * FROM ({selects})")
    if spec.load_id_sql is None:
        con.execute(f'DELETE FROM {SCHEMA}.eval_state WHERE "table" = ?', [label])
        return
    con.execute(
        f'INSERT OR REPLACE INTO {SCHEMA}.eval_state ("table", signature, as_of, load_ids, '
        'parents, "rows", run_id, evaluated_at, checked) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
        [
            label,
            p.signature,
            as_of,
            json.dumps(p.load_counts, sort_keys=True),
            json.dumps(p.parents, sort_keys=True),
            rows,
            run_id,
            evaluated_at.astimezone(dt.UTC).replace(tzinfo=None),
            json.dumps(checked, sort_keys=True) if checked is not None else None,
        ],
    )


def clear_candidates(con: duckdb.DuckDBPyConnection, spec: TableSpec) -> None:
    con.execute(f'DELETE FROM {SCHEMA}.incremental_candidates WHERE "table" = ?', [spec.label])
    con.execute(f"DROP TABLE IF EXISTS {candidate_rows_table(spec)}")


__all__ = [
    "STATE_VERSION",
    "Plan",
    "candidate_source",
    "plan",
    "save_state",
    "signature",
    "windowed",
    "write_candidates",
]
