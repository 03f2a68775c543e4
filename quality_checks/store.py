"""The `quality` schema: results history, table scores, rule catalog, quarantine.

Tables (DuckDB, schema `quality`):

* `results`        one row per expectation per run (run_id, checked_at, table, expectation,
                   dimension, column, checked, failed, pass_pct, hard)
* `table_scores`   one row per table per run: row-weighted score, per-dimension scores (JSON),
                   rows, failing rows, quarantined rows, passed, severity
* `expectations`   catalog of rules (latest definition): expectation, table, dimension, column,
                   hard, soft, description
* `quarantine_ids` (object, record_id, rule, reason, detected_at): rows failing a hard rule;
                   each run replaces its object's rows. dbt staging anti-joins it.
* view `quarantine` quarantine_ids with the rule's table, dimension and column.
* `row_failures`   incremental state: (table, row_key, record_id, load_id, rule) for every rule
                   every row failed at the table's last evaluation (replaced per table)
* `eval_state`     incremental state: one row per table: rule-set signature, as_of, the load ids
                   present (with row counts) and the parents' load ids at the last evaluation
* `incremental_candidates` (table, row_key): the keys of the rows an incremental evaluation
                   validates; emptied when the evaluation ends
* `candidate_rows__<schema>__<table>` those rows, copied once (GX and the SQL pass read them);
                   dropped when the evaluation ends
* `partition_keys__<schema>__<table>` (rule, row_key, part, load_id, live): the window rules'
                   partition values per row, maintained from each new load
                   (quality_checks.partition_keys)
"""

from __future__ import annotations

import datetime as dt
import json
import logging

import duckdb
import pyarrow as pa

from orchestration.warehouse import connect  # noqa: F401 - the stores' connection
from quality_checks.score import TableResult

log = logging.getLogger(__name__)

SCHEMA = "quality"

DDL = [
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.results (
        run_id VARCHAR, checked_at TIMESTAMP, "table" VARCHAR, expectation VARCHAR,
        dimension VARCHAR, "column" VARCHAR, checked BIGINT, failed BIGINT, pass_pct DOUBLE,
        hard BOOLEAN)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.table_scores (
        run_id VARCHAR, checked_at TIMESTAMP, "table" VARCHAR, object VARCHAR, score DOUBLE,
        dimension_scores VARCHAR, value_pass_pct DOUBLE, "rows" BIGINT, failed_rows BIGINT,
        quarantined_rows BIGINT, hard_failed_downstream BIGINT, passed BOOLEAN,
        severity VARCHAR, gate DOUBLE, engine VARCHAR, seconds DOUBLE, samples VARCHAR,
        errors VARCHAR, findings VARCHAR, evaluation VARCHAR)""",
    # added after the first release: warehouses created before get the columns here
    f"ALTER TABLE {SCHEMA}.table_scores ADD COLUMN IF NOT EXISTS findings VARCHAR",
    f"ALTER TABLE {SCHEMA}.table_scores ADD COLUMN IF NOT EXISTS evaluation VARCHAR",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.expectations (
        expectation VARCHAR PRIMARY KEY, "table" VARCHAR, dimension VARCHAR, "column" VARCHAR,
        kind VARCHAR, hard BOOLEAN, soft BOOLEAN, description VARCHAR)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.quarantine_ids (
        object VARCHAR, record_id VARCHAR, rule VARCHAR, reason VARCHAR, detected_at TIMESTAMP)""",
    f"""CREATE OR REPLACE VIEW {SCHEMA}.quarantine AS
        SELECT q.object, q.record_id, q.rule, e."table", e.dimension, e."column", q.reason,
               q.detected_at, e.description AS rule_description
        FROM {SCHEMA}.quarantine_ids AS q
        LEFT JOIN {SCHEMA}.expectations AS e ON e.expectation = q.rule""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.row_failures (
        "table" VARCHAR, row_key VARCHAR, record_id VARCHAR, load_id VARCHAR, rule VARCHAR)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.eval_state (
        "table" VARCHAR PRIMARY KEY, signature VARCHAR, as_of TIMESTAMPTZ, load_ids VARCHAR,
        parents VARCHAR, "rows" BIGINT, run_id VARCHAR, evaluated_at TIMESTAMP,
        checked VARCHAR)""",
    f"ALTER TABLE {SCHEMA}.eval_state ADD COLUMN IF NOT EXISTS checked VARCHAR",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.incremental_candidates (
        "table" VARCHAR, row_key VARCHAR)""",
]


OBJECTS = (
    "results",
    "table_scores",
    "expectations",
    "quarantine_ids",
    "quarantine",
    "row_failures",
    "eval_state",
    "incremental_candidates",
)


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the quality schema, tables and view when any is missing (idempotent)."""
    have = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [SCHEMA]
        ).fetchall()
    }
    if (
        have >= set(OBJECTS)
        and _has_column(con, "table_scores", "evaluation")
        and _has_column(con, "eval_state", "checked")
    ):
        return
    for stmt in DDL:
        con.execute(stmt)


def write_run(
    con: duckdb.DuckDBPyConnection, result: TableResult, run_id: str, checked_at: dt.datetime
) -> None:
    """Append one row per expectation to quality.results and one to quality.table_scores."""
    ts = checked_at.astimezone(dt.UTC).replace(tzinfo=None)
    if result.rules:
        rs = result.rules
        n = len(rs)
        results = pa.table(
            {
                "run_id": [run_id] * n,
                "checked_at": pa.array([ts] * n, pa.timestamp("us")),
                "table": [result.label] * n,
                "expectation": [r.name for r in rs],
                "dimension": [r.dimension for r in rs],
                "column": [r.column for r in rs],
                "checked": pa.array([r.checked for r in rs], pa.int64()),
                "failed": pa.array([r.failed for r in rs], pa.int64()),
                "pass_pct": [round(r.pass_pct, 6) for r in rs],
                "hard": [r.hard for r in rs],
            }
        )
        catalog = pa.table(
            {
                "expectation": [r.name for r in rs],
                "table": [result.label] * n,
                "dimension": [r.dimension for r in rs],
                "column": [r.column for r in rs],
                "kind": [r.kind for r in rs],
                "hard": [r.hard for r in rs],
                "soft": [r.soft for r in rs],
                "description": [r.description for r in rs],
            }
        )
        con.register("__q_results", results)
        con.register("__q_catalog", catalog)
        try:
            con.execute(f"INSERT INTO {SCHEMA}.results SELECT * FROM __q_results")
            con.execute(f"INSERT OR REPLACE INTO {SCHEMA}.expectations SELECT * FROM __q_catalog")
        finally:
            con.unregister("__q_results")
            con.unregister("__q_catalog")
    c = result.counts
    con.execute(
        f"""INSERT INTO {SCHEMA}.table_scores (run_id, checked_at, "table", object, score,
            dimension_scores, value_pass_pct, "rows", failed_rows, quarantined_rows,
            hard_failed_downstream, passed, severity, gate, engine, seconds, samples, errors,
            findings, evaluation) VALUES
            (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            run_id,
            ts,
            result.label,
            result.object,
            result.score,
            json.dumps(result.dimension_scores),
            result.value_pass_pct,
            c.rows,
            c.failed_rows,
            c.quarantined_rows,
            c.hard_failed_downstream,
            result.passed,
            result.severity,
            result.gate,
            result.engine,
            result.seconds,
            json.dumps(result.samples, default=str),
            json.dumps(result.errors),
            json.dumps(result.findings),
            result.evaluation,
        ],
    )


def read_scores(con: duckdb.DuckDBPyConnection, max_runs: int = 30) -> list[dict]:
    """table_scores of the newest `max_runs` runs, oldest first (for trends and reports)."""
    if not _has_table(con, "table_scores"):
        return []
    q = f"""
        WITH runs AS (
            SELECT run_id, max(checked_at) AS at FROM {SCHEMA}.table_scores GROUP BY run_id
            ORDER BY at DESC LIMIT {int(max_runs)})
        SELECT s.* FROM {SCHEMA}.table_scores s JOIN runs USING (run_id)
        ORDER BY runs.at, s."table" """
    cur = con.execute(q)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def read_results(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict]:
    cur = con.execute(
        f'SELECT * FROM {SCHEMA}.results WHERE run_id = ? ORDER BY "table", expectation',
        [run_id],
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _has_column(con: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = ? "
            "AND table_name = ? AND column_name = ?",
            [SCHEMA, table, column],
        ).fetchall()[0][0]
    )


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? "
            "AND table_name = ?",
            [SCHEMA, name],
        ).fetchall()[0][0]
    )


PICKLIST_TABLE = ("salesforce", "_picklist_values")


def read_picklists(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], tuple[str, ...]] | None:
    """The org's active picklist values, if the extractor stored them from `describe`.

    Table `salesforce._picklist_values(object, field, value)` (API names, one row per active
    value). None when absent: the suites then use sandbox.schema's picklists.
    """
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        list(PICKLIST_TABLE),
    ).fetchall()[0][0]
    if not exists:
        return None
    out: dict[tuple[str, str], list[str]] = {}
    for obj, fld, value in con.execute(
        f'SELECT object, field, value FROM "{PICKLIST_TABLE[0]}"."{PICKLIST_TABLE[1]}" '
        "WHERE value IS NOT NULL ORDER BY object, field, value"
    ).fetchall():
        out.setdefault((obj, fld), []).append(value)
    return {k: tuple(v) for k, v in out.items()}
