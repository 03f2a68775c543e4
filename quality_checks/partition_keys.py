"""Persisted partition keys of the window rules, maintained from each new load only.

The incremental evaluation closes the candidate rows over the partitions of the window rules
(duplicate person by `lower(trim(email))`, one ad_spend row per `hash(date, channel, campaign,
currency)`): every live row of a partition that holds a candidate is validated too. Computing the
partition expression over every live row is most of an incremental run's cost on Lead and
Contact (millions of e-mails lower-cased and trimmed for a few thousand candidates). So the
partition value of every row is kept in `quality."partition_keys__<schema>__<table>"` (rule,
row_key, part, load_id, live) and the closure reads plain columns there.

Only rules whose partition is an expression are kept: a partition by a plain column (the unique
Id, `touchpoint_id`) costs no more to read from the raw table than from a copy of it.

Maintenance (dlt's merge contract, as for the rest of the incremental state): a full evaluation
rebuilds a table's keys from scratch; an incremental one first deletes the keys of loads that are
gone, of the new loads and of every row key the new loads wrote (a merged row replaces its older
version), then inserts the rows of the new loads. Every row is kept, deleted ones too (`live`
says which), so the keys' rows per load id must equal the table's (`Plan.load_counts`, counted
anyway): when they do not (no keys yet, a table edited outside dlt, a run that stopped half-way),
the keys are rebuilt from the whole table, so the closure always reads an exact image of it.
"""

from __future__ import annotations

import logging
import re

import duckdb

from quality_checks.rules import Rule, TableSpec, lit, quote

log = logging.getLogger(__name__)

SCHEMA = "quality"
_PLAIN_COLUMN = re.compile(r'^"([^"]|"")+"$')


def kept_rules(spec: TableSpec) -> list[Rule]:
    """The window rules whose partition values are kept (partition is an expression)."""
    return [
        r
        for r in spec.rules
        if r.partition_sql
        and r.partition_sql != spec.row_key
        and not _PLAIN_COLUMN.match(r.partition_sql.strip())
        and spec.load_id_sql is not None
    ]


def table_for(spec: TableSpec) -> str:
    """The table holding `spec`'s partition keys: (rule, row_key, part, load_id, live)."""
    return f"{SCHEMA}.{quote('partition_keys__' + spec.schema + '__' + spec.table)}"


def _exists(con: duckdb.DuckDBPyConnection, spec: TableSpec) -> bool:
    name = "partition_keys__" + spec.schema + "__" + spec.table
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND "
            "table_name = ?",
            [SCHEMA, name],
        ).fetchall()[0][0]
    )


def _select(spec: TableSpec, rules: list[Rule], where: str) -> str:
    return " UNION ALL ".join(
        f"SELECT {lit(r.name)} AS rule, CAST({spec.row_key} AS VARCHAR) AS row_key, "
        f"CAST({r.partition_sql} AS VARCHAR) AS part, CAST({spec.load_id_sql} AS VARCHAR) "
        f"AS load_id, coalesce({spec.live_filter}, false) AS live FROM {spec.qualified} "
        f"WHERE {where}"
        for r in rules
    )


def rebuild(con: duckdb.DuckDBPyConnection, spec: TableSpec) -> None:
    """Replace the table's keys by those of every row (a full evaluation; a mismatch)."""
    rules = kept_rules(spec)
    if rules:
        con.execute(f"CREATE OR REPLACE TABLE {table_for(spec)} AS {_select(spec, rules, 'true')}")
    else:
        drop(con, spec)


def drop(con: duckdb.DuckDBPyConnection, spec: TableSpec) -> None:
    """Forget the table's keys."""
    con.execute(f"DROP TABLE IF EXISTS {table_for(spec)}")


def _counts(con: duckdb.DuckDBPyConnection, spec: TableSpec) -> dict[tuple[str, str], int]:
    return {
        (rule, load or ""): int(n)
        for rule, load, n in con.execute(
            f"SELECT rule, load_id, count(*) FROM {table_for(spec)} GROUP BY ALL"
        ).fetchall()
    }


def _exact(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, rules: list[Rule], current: dict[str, int]
) -> bool:
    want = {(r.name, k): n for r in rules for k, n in current.items() if n}
    return _counts(con, spec) == want


def maintain(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    new_loads: list[str],
    current: dict[str, int],
) -> str:
    """Bring the table's keys up to date with its rows (before the closure reads them).

    `new_loads`: load ids the last evaluation did not see ("" = rows without a load id);
    `current`: rows per load id now. Returns what was done ("kept", "updated", "rebuilt").
    """
    rules = kept_rules(spec)
    if not rules:
        return "none"
    if not _exists(con, spec):
        log.info("quality %s: partition keys built", spec.label)
        rebuild(con, spec)
        return "rebuilt"
    t = table_for(spec)
    load = f"CAST({spec.load_id_sql} AS VARCHAR)"
    done = "kept"
    kept = _loads_kept(con, spec)
    gone_or_new = [k for k in new_loads if k] + [k for k in kept if k not in current]
    if new_loads or gone_or_new:
        named = ", ".join(lit(x) for x in new_loads if x) or "NULL"
        in_new = f"({load} IN ({named})" + (
            f" OR {spec.load_id_sql} IS NULL)" if "" in new_loads else ")"
        )
        stale = ", ".join(lit(x) for x in gone_or_new) or "NULL"
        con.execute(
            f"DELETE FROM {t} WHERE (load_id IN ({stale})"
            + (" OR load_id IS NULL" if "" in new_loads else "")
            + f" OR row_key IN (SELECT CAST({spec.row_key} AS VARCHAR) FROM {spec.qualified} "
            f"WHERE {in_new}))"
        )
        con.execute(f"INSERT INTO {t} {_select(spec, rules, in_new)}")
        done = "updated"
    if not _exact(con, spec, rules, current):
        log.info("quality %s: partition keys rebuilt (not an image of the table)", spec.label)
        rebuild(con, spec)
        done = "rebuilt"
    return done


def _loads_kept(con: duckdb.DuckDBPyConnection, spec: TableSpec) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT load_id FROM {table_for(spec)} WHERE load_id IS NOT NULL"
        ).fetchall()
    ]


def close_sql(spec: TableSpec, rule: Rule, candidates: str) -> str:
    """INSERT the keys of live rows sharing a partition with a candidate (not yet candidates)
    into quality.incremental_candidates, from the kept keys: = the same over the raw table."""
    label = lit(spec.label)
    keys = f"SELECT row_key, part, live FROM {table_for(spec)} WHERE rule = {lit(rule.name)}"
    return (
        f"INSERT INTO {SCHEMA}.incremental_candidates SELECT DISTINCT {label}, k.row_key "
        f"FROM ({keys}) AS k WHERE k.live AND k.row_key IS NOT NULL AND k.part IN (SELECT "
        f"c.part FROM ({keys}) AS c WHERE c.live AND c.row_key IN ({candidates})) AND "
        f"k.row_key NOT IN ({candidates})"
    )


__all__ = ["close_sql", "drop", "kept_rules", "maintain", "rebuild", "table_for"]
