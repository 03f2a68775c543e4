"""DuckDB I/O of the forecasts layer: read the marts, write `forecasts.forecasts` and
`forecasts.ledger`. Open, work, close: callers pass a path, never a long-lived connection.

Reruns are idempotent: writing a (cadence, as_of) first deletes that partition's rows, in one
transaction, so a rerun or backfill replaces rather than duplicates.
"""

from __future__ import annotations

import logging

import duckdb
import pandas as pd

from forecasts.ledger import LEDGER_COLUMNS
from forecasts.series import HISTORY_COLUMNS
from orchestration.warehouse import connect  # noqa: F401 - the stores' connection

log = logging.getLogger(__name__)

SCHEMA = "forecasts"
FORECAST_COLUMNS = [
    "as_of",
    "cadence",
    "series_key",
    "segment",
    "region",
    "horizon",
    "period_start",
    "period_end",
    "currency",
    "model",
    "point",
    "lo80",
    "hi80",
    "lo95",
    "hi95",
    "run_id",
    "generated_at",
]
DDL = [
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.forecasts (
        as_of DATE, cadence VARCHAR, series_key VARCHAR, segment VARCHAR, region VARCHAR,
        horizon INTEGER, period_start DATE, period_end DATE, currency VARCHAR, model VARCHAR,
        point DOUBLE, lo80 DOUBLE, hi80 DOUBLE, lo95 DOUBLE, hi95 DOUBLE, run_id VARCHAR,
        generated_at TIMESTAMP)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.ledger (
        as_of DATE, cadence VARCHAR, period_start DATE, period_end DATE, horizon INTEGER,
        series_key VARCHAR, model VARCHAR, point DOUBLE, lo80 DOUBLE, hi80 DOUBLE, lo95 DOUBLE,
        hi95 DOUBLE, run_id VARCHAR, published_at TIMESTAMP)""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.backtest_accuracy (
        as_of DATE, cadence VARCHAR, series_key VARCHAR, horizon INTEGER, wape DOUBLE,
        accuracy DOUBLE, n INTEGER)""",
]
ACCURACY_COLUMNS = ["as_of", "cadence", "series_key", "horizon", "wape", "accuracy", "n"]


def has_table(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND "
            "table_name = ?",
            [schema, table],
        ).fetchone()[0]
    )


def read_history(con: duckdb.DuckDBPyConnection, valid_between=None) -> pd.DataFrame:
    """`marts.opportunity_history` (the forecast columns). With `valid_between=(a, b)`, only
    the intervals that are an opportunity's state at some time in [a, b] (`valid_from <= b` and
    `valid_to` null or > a): enough for `state_as_of` at any time in [a, b], and a fraction of
    the whole history on a large org."""
    if not has_table(con, "marts", "opportunity_history"):
        raise RuntimeError("marts.opportunity_history does not exist: build the dbt marts first")
    cols = ", ".join(HISTORY_COLUMNS)
    if valid_between is None:
        return con.execute(f"SELECT {cols} FROM marts.opportunity_history").df()
    a, b = (pd.Timestamp(t).to_pydatetime() for t in valid_between)
    return con.execute(
        f"SELECT {cols} FROM marts.opportunity_history WHERE valid_from <= ? "
        "AND (valid_to IS NULL OR valid_to > ?)",
        [b, a],
    ).df()


def read_bookings_daily(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    if not has_table(con, "marts", "bookings_daily"):
        raise RuntimeError("marts.bookings_daily does not exist: build the dbt marts first")
    return con.execute(
        "SELECT booking_date, segment, region, bookings_usd, deals_won FROM marts.bookings_daily"
    ).df()


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    for stmt in DDL:
        con.execute(stmt)


def replace_partition(
    con: duckdb.DuckDBPyConnection,
    table: str,
    df: pd.DataFrame,
    cadence: str,
    as_of,
    columns: list[str],
) -> int:
    """Delete the (cadence, as_of) rows of `forecasts.<table>` and insert `df`, atomically."""
    ensure_schema(con)
    data = df[columns].copy()
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            f"DELETE FROM {SCHEMA}.{table} WHERE cadence = ? AND as_of = ?",
            [cadence, pd.Timestamp(as_of).date()],
        )
        con.register("_fc_rows", data)
        con.execute(
            f"INSERT INTO {SCHEMA}.{table} ({', '.join(columns)}) "
            f"SELECT {', '.join(columns)} FROM _fc_rows"
        )
        con.unregister("_fc_rows")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return len(data)


def write_forecasts(con, table: pd.DataFrame, cadence: str, as_of) -> int:
    return replace_partition(con, "forecasts", table, cadence, as_of, FORECAST_COLUMNS)


def write_ledger(con, rows: pd.DataFrame, cadence: str, as_of) -> int:
    return replace_partition(con, "ledger", rows, cadence, as_of, LEDGER_COLUMNS)


def write_backtest_accuracy(con, rows: pd.DataFrame, cadence: str, as_of) -> int:
    return replace_partition(con, "backtest_accuracy", rows, cadence, as_of, ACCURACY_COLUMNS)


def read_partition(con: duckdb.DuckDBPyConnection, table: str, cadence: str, as_of) -> pd.DataFrame:
    """Rows of forecasts.<table> for one (cadence, as_of)."""
    if not has_table(con, SCHEMA, table):
        raise RuntimeError(f"{SCHEMA}.{table} does not exist: materialize the forecasts first")
    return con.execute(
        f"SELECT * FROM {SCHEMA}.{table} WHERE cadence = ? AND as_of = ?",
        [cadence, pd.Timestamp(as_of).date()],
    ).df()


def read_ledger(con: duckdb.DuckDBPyConnection, cadence: str | None = None) -> pd.DataFrame:
    if not has_table(con, SCHEMA, "ledger"):
        return pd.DataFrame(columns=LEDGER_COLUMNS)
    q = f"SELECT * FROM {SCHEMA}.ledger"
    params: list = []
    if cadence:
        q += " WHERE cadence = ?"
        params.append(cadence)
    return con.execute(q + " ORDER BY as_of, series_key, horizon", params).df()


def latest_quality_score(con: duckdb.DuckDBPyConnection) -> float | None:
    """Row-weighted data-quality score of the newest quality run (quality.table_scores, else
    quality.results); None when quality has never run."""
    if has_table(con, "quality", "table_scores"):
        row = con.execute("""
            WITH last AS (SELECT run_id FROM quality.table_scores
                          ORDER BY checked_at DESC LIMIT 1)
            SELECT sum("rows"), sum(failed_rows) FROM quality.table_scores
            WHERE run_id IN (SELECT run_id FROM last)""").fetchone()
        if row and row[0]:
            return 1.0 - float(row[1] or 0) / float(row[0])
    if has_table(con, "quality", "results"):
        row = con.execute("""
            WITH last AS (SELECT run_id FROM quality.results ORDER BY checked_at DESC LIMIT 1)
            SELECT sum(checked), sum(failed) FROM quality.results
            WHERE run_id IN (SELECT run_id FROM last)""").fetchone()
        if row and row[0]:
            return 1.0 - float(row[1] or 0) / float(row[0])
    return None
