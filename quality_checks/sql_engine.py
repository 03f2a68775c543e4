"""The SQL side of validation: row-level flags, counts, samples and quarantine, all in DuckDB.

Every rule's SQL predicate is evaluated in one pass over the table's live rows; only the failing
rows (typically ~1 %) are kept, in a connection-local temp table, from which the row-level union,
the failing-row samples and the quarantine are derived. A second, cheap pass counts the values
each rule checked. Memory stays flat in the row count: nothing is fetched but counts and samples.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import duckdb

from quality_checks.rules import DIMENSIONS, FRESH, Rule, TableSpec, lit, quote

log = logging.getLogger(__name__)

FAIL_TABLE = "__salesops_quality_failing"


@dataclass(frozen=True)
class SqlCounts:
    rows: int
    checked: dict[str, int]  # by rule name
    failed: dict[str, int]  # by rule name
    failed_rows: int
    dim_checked: dict[str, int]
    dim_failed: dict[str, int]
    hard_failed_rows: int


def table_columns(con: duckdb.DuckDBPyConnection, spec: TableSpec) -> set[str] | None:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ?",
        [spec.schema, spec.table],
    ).fetchall()
    return {r[0] for r in rows} or None


def all_columns(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], set[str]]:
    """Every table's columns, in one catalog query: {(schema, table): {column, ...}}."""
    out: dict[tuple[str, str], set[str]] = {}
    for s, t, c in con.execute(
        "SELECT table_schema, table_name, column_name FROM information_schema.columns"
    ).fetchall():
        out.setdefault((s, t), set()).add(c)
    return out


def existing_tables(con: duckdb.DuckDBPyConnection) -> set[tuple[str, str]]:
    return {
        (s, t)
        for s, t in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
        ).fetchall()
    }


def applicable(
    spec: TableSpec, columns: set[str], tables: set[tuple[str, str]] | None = None
) -> tuple[TableSpec, list[str]]:
    """Drop rules whose columns (or parent table) are missing; say which (the caller logs and
    reports them)."""
    keep: list[Rule] = []
    skipped: list[str] = []
    for rule in spec.rules:
        missing = sorted(c for c in spec.columns_used(rule) if c not in columns)
        if missing:
            skipped.append(f"{rule.name} (missing column {', '.join(missing)})")
        elif rule.needs_table and tables is not None and rule.needs_table not in tables:
            skipped.append(f"{rule.name} (table {'.'.join(rule.needs_table)} not loaded)")
        else:
            keep.append(rule)
    return spec.with_rules(keep), skipped


def row_spec(spec: TableSpec) -> TableSpec:
    """The spec without its table-level freshness rules (they never fail a row)."""
    if all(r.kind != FRESH for r in spec.rules):
        return spec
    return spec.with_rules([r for r in spec.rules if r.kind != FRESH])


def freshness_rules(spec: TableSpec) -> list[Rule]:
    return [r for r in spec.rules if r.kind == FRESH]


def freshness(con: duckdb.DuckDBPyConnection, spec: TableSpec) -> dict[str, tuple[bool, object]]:
    """Table-level freshness per rule: (stale, newest value) from one max() over the live rows."""
    out = {}
    for r in freshness_rules(spec):
        stale, newest = con.execute(
            f"SELECT coalesce(m < {lit(r.gx_args['min_value'])}, true), m FROM (SELECT "
            f"max({quote(r.column)}) AS m FROM {spec.qualified} WHERE {spec.live_filter})"
        ).fetchall()[0]
        out[r.name] = (bool(stale), newest)
    return out


def _any(exprs: list[str]) -> str:
    return "(" + " OR ".join(exprs) + ")" if exprs else "false"


def _cif(expr: str) -> str:
    """count_if that is 0 (not NULL) on an empty input."""
    return f"coalesce(count_if({expr}), 0)"


def _flag(i: int) -> str:
    return f"__f{i}"


def build_failing_rows_sql(spec: TableSpec, source: str | None = None) -> str:
    """CREATE TEMP TABLE of the failing live rows: record id, one flag and reason per rule.

    `source`: the rows to evaluate (default: every live row); the incremental evaluation passes
    the candidate rows. Also keeps the row key and load id (state for the next evaluation).
    """
    spec = row_spec(spec)
    sel = [
        f"CAST({spec.record_id} AS VARCHAR) AS __rid",
        f"CAST({spec.row_key} AS VARCHAR) AS __key",
        f"CAST({spec.load_id_sql or 'NULL'} AS VARCHAR) AS __load",
    ]
    for i, r in enumerate(spec.rules):
        sel.append(
            f"(coalesce({r.fail_sql}, false) AND coalesce({r.check_sql}, false)) AS {_flag(i)}"
        )
    flags = ",\n    ".join(sel)
    reasons = ",\n  ".join(
        f"CASE WHEN {_flag(i)} THEN {r.reason_sql} END AS __r{i}" for i, r in enumerate(spec.rules)
    )
    cols = ", ".join(_flag(i) for i in range(len(spec.rules)))
    where = _any([_flag(i) for i in range(len(spec.rules))])
    return (
        f"CREATE OR REPLACE TEMP TABLE {FAIL_TABLE} AS\n"
        f"WITH flags AS (\n  SELECT\n    {flags},\n    *\n"
        f"  FROM ({source or spec.source_query()}) AS src\n)\n"
        f"SELECT __rid, __key, __load, {cols},\n  {reasons}\nFROM flags\nWHERE {where}"
    )


def build_checked_sql(spec: TableSpec, source: str | None = None) -> str:
    """One aggregate pass: live rows, values checked per rule and rows checked per dimension."""
    spec = row_spec(spec)
    parts = ["count(*)"]
    for r in spec.rules:
        parts.append(_cif(f"coalesce({r.check_sql}, false)"))
    for d in DIMENSIONS:
        checks = [f"coalesce({r.check_sql}, false)" for r in spec.rules if r.dimension == d]
        parts.append(_cif(_any(checks)))
    return f"SELECT {', '.join(parts)} FROM ({source or spec.source_query()}) AS src"


def checked_counts(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, source: str | None = None
) -> tuple[int, dict[str, int]]:
    """(rows, values checked per rule) over `source` (default: the live rows)."""
    spec = row_spec(spec)
    agg = con.execute(build_checked_sql(spec, source)).fetchall()[0]
    return int(agg[0]), {r.name: int(agg[1 + i]) for i, r in enumerate(spec.rules)}


def count(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    source: str | None = None,
    checked_source: str | None = None,
    checked_base: dict | None = None,
) -> SqlCounts:
    """Run both passes; leaves the failing rows in the temp table FAIL_TABLE for later steps.

    The failing rows come from `source` (default: every live row; the incremental evaluation
    passes a superset of the rows that can fail), the checked counts from every live row, or from
    `checked_source` (the new rows) added to `checked_base` (the last evaluation's counts, when no
    row it counted has left the table). Freshness rules are table-level (see `freshness`).
    """
    spec = row_spec(spec)
    n = len(spec.rules)
    con.execute(build_failing_rows_sql(spec, source))
    agg = con.execute(build_checked_sql(spec, checked_source)).fetchall()[0]
    rows = int(agg[0])
    checked = {r.name: int(agg[1 + i]) for i, r in enumerate(spec.rules)}
    dim_checked = {d: int(agg[1 + n + j]) for j, d in enumerate(DIMENSIONS)}
    if checked_base is not None:  # the last evaluation's counts + those of the new rows
        rows += int(checked_base["rows"])
        checked = {k: v + int(checked_base["rules"][k]) for k, v in checked.items()}
        dim_checked = {k: v + int(checked_base["dims"][k]) for k, v in dim_checked.items()}

    fparts = ["count(*)"]
    fparts += [_cif(_flag(i)) for i in range(n)]
    for d in DIMENSIONS:
        fparts.append(_cif(_any([_flag(i) for i, r in enumerate(spec.rules) if r.dimension == d])))
    fparts.append(_cif(_any([_flag(i) for i, r in enumerate(spec.rules) if r.hard])))
    fa = con.execute(f"SELECT {', '.join(fparts)} FROM {FAIL_TABLE}").fetchall()[0]
    failed = {r.name: int(fa[1 + i]) for i, r in enumerate(spec.rules)}
    dim_failed = {d: int(fa[1 + n + j]) for j, d in enumerate(DIMENSIONS)}
    return SqlCounts(
        rows=rows,
        checked=checked,
        failed=failed,
        failed_rows=int(fa[0]),
        dim_checked=dim_checked,
        dim_failed=dim_failed,
        hard_failed_rows=int(fa[-1]),
    )


def samples(con: duckdb.DuckDBPyConnection, spec: TableSpec, per_rule: int, limit: int) -> list:
    """Failing rows with their record Ids: up to `per_rule` per failing rule, hard rules first."""
    spec = row_spec(spec)
    order = sorted(range(len(spec.rules)), key=lambda i: (not spec.rules[i].hard, i))
    selects = []
    for rank, i in enumerate(order):
        r = spec.rules[i]
        selects.append(
            f"(SELECT {rank} AS k, __rid, {_lit(r.name)} AS rule, {_lit(r.dimension)} AS dim, "
            f"{_lit(r.column or '')} AS col, {_lit('hard' if r.hard else 'soft' if r.soft else '')}"
            f" AS tier, __r{i} AS reason FROM {FAIL_TABLE} WHERE {_flag(i)} "
            f"ORDER BY __rid LIMIT {int(per_rule)})"
        )
    if not selects:
        return []
    q = " UNION ALL ".join(selects) + f" ORDER BY k, __rid LIMIT {int(limit)}"
    return [
        {
            "record_id": rid,
            "rule": rule,
            "dimension": dim,
            "column": col,
            "tier": tier,
            "reason": reason,
        }
        for _, rid, rule, dim, col, tier, reason in con.execute(q).fetchall()
    ]


def replace_quarantine(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, object_name: str, detected_at: object
) -> int:
    """Replace `object_name`'s rows in quality.quarantine_ids by this run's hard-rule failures."""
    spec = row_spec(spec)
    con.execute("DELETE FROM quality.quarantine_ids WHERE object = ?", [object_name])
    hard = [(i, r) for i, r in enumerate(spec.rules) if r.hard]
    if not hard:
        return 0
    selects = " UNION ALL ".join(
        f"SELECT __rid, {_lit(r.name)}, __r{i} FROM {FAIL_TABLE} WHERE {_flag(i)} "
        "AND __rid IS NOT NULL"
        for i, r in hard
    )
    con.execute(
        "INSERT INTO quality.quarantine_ids (object, record_id, rule, reason, detected_at) "
        f"SELECT DISTINCT ?, * , CAST(? AS TIMESTAMP) FROM ({selects})",
        [object_name, detected_at],
    )
    return int(
        con.execute(
            "SELECT count(DISTINCT record_id) FROM quality.quarantine_ids WHERE object = ?",
            [object_name],
        ).fetchall()[0][0]
    )


def hard_failed_downstream(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, object_name: str, quarantined: bool
) -> int:
    """Rows breaking a hard rule that would still flow downstream (not quarantined)."""
    spec = row_spec(spec)
    hard = _any([_flag(i) for i, r in enumerate(spec.rules) if r.hard])
    q = f"SELECT count(*) FROM {FAIL_TABLE} WHERE {hard}"
    if quarantined:
        q += (
            " AND (__rid IS NULL OR __rid NOT IN (SELECT record_id FROM quality.quarantine_ids "
            "WHERE object = ? AND record_id IS NOT NULL))"
        )
        return int(con.execute(q, [object_name]).fetchall()[0][0])
    return int(con.execute(q).fetchall()[0][0])


def drop_temp(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"DROP TABLE IF EXISTS {FAIL_TABLE}")


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


__all__ = [
    "FAIL_TABLE",
    "SqlCounts",
    "applicable",
    "checked_counts",
    "count",
    "freshness",
    "quote",
    "row_spec",
    "samples",
    "table_columns",
]
