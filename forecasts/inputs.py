"""What the forecast models need, aggregated in DuckDB at every origin, exactly as known then.

The engine never holds the opportunity history: for a sorted list of origins O_0 < ... < O_n-1
it asks DuckDB for small per-origin aggregates of the state intervals valid at each origin
(`valid_from <= O < valid_to`, or `valid_to` null):

* `bookings`   won at O with a close date before O's day: (origin, close_date, segment, region,
               amount_usd) — the bookings series as known at O;
* `open`       open at O: (origin, close_date, segment, region, stage_name, amount_usd >= 0);
* `won_future` won at O with a close date on/after O's day (count with probability 1);
* `win_counts` deals closed at O, per stage they were ever open in: (origin, stage_name, n, wins);
* `slippage`   deals won at O: per earlier open state, slip days (final close date minus the
               close date recorded then, clipped), each deal weighted 1 / its open states:
               (origin, slip, n_states, deals).

How, in two passes that never grow with the number of origins times rows: each interval's
timestamps are mapped to "bucket" indices (the first origin at or after the time, one CASE over
the sorted origins), so an interval is valid at origin k iff lo <= k < hi; rows are aggregated by
(lo, hi, keys) over the whole table, then the small result is joined with k = 0..n-1.
Amounts are summed as integer micro-dollars (HUGEINT), so every aggregate is exact and does not
depend on which other origins were in the query: the same origin always yields the same bits
(the fit cache hashes these series).

Assumes what `marts.opportunity_history` guarantees: one opportunity's intervals do not overlap
(`valid_to` of one state = `valid_from` of the next), so "open states known at O" of a deal
closed (or won) at O are its open states that started before the closed state did.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from forecasts.pipeline import SLIP_MAX, SLIP_MIN
from forecasts.series import HISTORY_COLUMNS, UNKNOWN, history_with_naive_times

log = logging.getLogger(__name__)

HISTORY_TABLE = "marts.opportunity_history"
MICRO = 1_000_000
# DuckDB memory for the aggregation (it spills beyond): keeps the forecast step's footprint
# small in the pipeline process whatever the history size
MEMORY_LIMIT_ENV = "SALESOPS_FORECAST_DUCKDB_MEMORY_LIMIT"
DEFAULT_MEMORY_LIMIT = "256MB"


@dataclass(frozen=True)
class OriginInputs:
    """Aggregates known at one origin (see module docstring); amounts in USD."""

    origin: pd.Timestamp
    bookings: pd.DataFrame  # booking_date, segment, region, amount_usd
    open: pd.DataFrame  # close_date, segment, region, stage_name, amount_usd
    won_future: pd.DataFrame  # close_date, segment, region, amount_usd
    win_counts: pd.DataFrame  # stage_name, n, wins
    slippage: pd.DataFrame  # slip, n_states, deals


def _ts_sql(t: pd.Timestamp) -> str:
    return f"TIMESTAMP '{pd.Timestamp(t).strftime('%Y-%m-%d %H:%M:%S.%f')}'"


def _bucket(expr: str, origins: Sequence[pd.Timestamp]) -> str:
    """SQL: index of the first origin >= expr (len(origins) when none, or expr null)."""
    whens = " ".join(f"WHEN {expr} <= {_ts_sql(o)} THEN {i}" for i, o in enumerate(origins))
    return f"(CASE {whens} ELSE {len(origins)} END)"


def _timestamp_expr(con: duckdb.DuckDBPyConnection, source: str, col: str) -> str:
    """Naive UTC timestamp of `col` (TIMESTAMP WITH TIME ZONE converted)."""
    typ = con.execute(f"SELECT typeof({col}) FROM {source} LIMIT 1").fetchone()
    if typ and "TIME ZONE" in str(typ[0]).upper():
        return f"timezone('UTC', {col})"
    return f"CAST({col} AS TIMESTAMP)"


def _normalized(con: duckdb.DuckDBPyConnection, source: str) -> str:
    """SELECT of the history with the types and defaults of `series.prepare_history`."""
    cols = {
        r[0]
        for r in con.execute(f"SELECT * FROM {source} LIMIT 0").description  # type: ignore[union-attr]
    }
    missing = [c for c in HISTORY_COLUMNS if c not in cols]
    if missing:
        raise ValueError(f"opportunity history is missing column(s): {', '.join(missing)}")
    vf = _timestamp_expr(con, source, "valid_from")
    vt = _timestamp_expr(con, source, "valid_to")
    return f"""
        SELECT CAST(opportunity_id AS VARCHAR) AS oid,
               {vf} AS vf, {vt} AS vt,
               coalesce(CAST(stage_name AS VARCHAR), '') AS stage_name,
               CAST(round(coalesce(CAST(amount_usd AS DOUBLE), 0) * {MICRO}) AS HUGEINT) AS amt,
               CAST(close_date AS DATE) AS close_date,
               coalesce(is_closed, false) AS is_closed,
               coalesce(is_won, false) AS is_won,
               coalesce(CAST(segment AS VARCHAR), '{UNKNOWN}') AS segment,
               coalesce(CAST(region AS VARCHAR), '{UNKNOWN}') AS region
        FROM {source}"""


def origin_inputs(
    con: duckdb.DuckDBPyConnection,
    origins: Sequence,
    source: str = HISTORY_TABLE,
) -> dict[pd.Timestamp, OriginInputs]:
    """Per-origin aggregates of the history in `source` (a table or view name on `con`).

    Runs under DuckDB memory limit `SALESOPS_FORECAST_DUCKDB_MEMORY_LIMIT` (default 256MB;
    the connection's own limit is restored afterwards)."""
    before = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    con.execute(f"SET memory_limit = '{os.environ.get(MEMORY_LIMIT_ENV, DEFAULT_MEMORY_LIMIT)}'")
    try:
        return _origin_inputs(con, origins, source)
    finally:
        con.execute(f"SET memory_limit = '{before}'")


def _origin_inputs(
    con: duckdb.DuckDBPyConnection, origins: Sequence, source: str
) -> dict[pd.Timestamp, OriginInputs]:
    t0 = time.monotonic()
    ors = sorted({pd.Timestamp(o) for o in origins})
    if not ors:
        return {}
    n = len(ors)
    h = _normalized(con, source)
    b_vf, b_vt = _bucket("vf", ors), _bucket("vt", ors)
    b_next_day = _bucket("(CAST(close_date AS TIMESTAMP) + INTERVAL 1 DAY)", ors)
    ks = ", ".join(f"({i})" for i in range(n))

    def per_origin(agg_sql: str, keys: str, value: str) -> pd.DataFrame:
        # agg_sql yields lo, hi, <keys>, v; expand to every origin k with lo <= k < hi. Sorted
        # by (k, keys) here (keys are unique per origin; byte order = pandas' string order,
        # NULLS LAST like pandas' NaT), so the frame is split by origin with slices, not groupby
        order = ", ".join(f"{c.strip()} ASC NULLS LAST" for c in keys.split(","))
        sql = f"""
            WITH a AS ({agg_sql}), k(k) AS (VALUES {ks})
            SELECT k.k, {keys}, {value}
            FROM a JOIN k ON a.lo <= k.k AND k.k < a.hi
            GROUP BY ALL
            ORDER BY k.k, {order}"""
        return con.execute(sql).df()

    money = f"CAST(sum(v) AS DOUBLE) / {MICRO}"
    bookings = per_origin(
        f"""SELECT greatest({b_vf}, {b_next_day}) AS lo, {b_vt} AS hi,
                   close_date, segment, region, sum(amt) AS v
            FROM ({h}) WHERE is_won GROUP BY ALL HAVING lo < hi""",
        "close_date, segment, region",
        f"{money} AS amount_usd",
    )
    won_future = per_origin(
        f"""SELECT {b_vf} AS lo, least({b_vt}, {b_next_day}) AS hi,
                   close_date, segment, region, sum(greatest(amt, 0)) AS v
            FROM ({h}) WHERE is_won GROUP BY ALL HAVING lo < hi""",
        "close_date, segment, region",
        f"{money} AS amount_usd",
    )
    open_ = per_origin(
        f"""SELECT {b_vf} AS lo, {b_vt} AS hi, close_date, segment, region, stage_name,
                   sum(greatest(amt, 0)) AS v
            FROM ({h}) WHERE NOT is_closed GROUP BY ALL HAVING lo < hi""",
        "close_date, segment, region, stage_name",
        f"{money} AS amount_usd",
    )
    # closed states x the distinct stages the deal was open in before (first open in them
    # before the closed state started); each side reads only the columns it needs
    win_counts = per_origin(
        f"""WITH c AS (SELECT oid, vf, vt, is_won FROM ({h}) WHERE is_closed),
            f AS (SELECT oid, stage_name, min(vf) AS first_vf FROM ({h}) WHERE NOT is_closed
                  GROUP BY ALL),
            p AS (SELECT c.vf, c.vt, c.is_won, f.stage_name
                  FROM c JOIN f ON f.oid = c.oid AND f.first_vf < c.vf)
            SELECT {b_vf} AS lo, {b_vt} AS hi, stage_name, is_won, count(*) AS v
            FROM p GROUP BY ALL HAVING lo < hi""",
        "stage_name",
        "CAST(sum(v) AS BIGINT) AS n, CAST(sum(v) FILTER (WHERE is_won) AS BIGINT) AS wins",
    )
    slippage = per_origin(
        f"""WITH w AS (SELECT oid, vf, vt, close_date FROM ({h}) WHERE is_won),
            o AS (SELECT oid, vf, close_date FROM ({h}) WHERE NOT is_closed),
            d AS (SELECT w.vf, w.vt,
                         list(least(greatest(date_diff('day', o.close_date, w.close_date),
                                             {SLIP_MIN}), {SLIP_MAX})) AS slips
                  FROM w JOIN o ON o.oid = w.oid AND o.vf < w.vf
                  GROUP BY w.oid, w.vf, w.vt),
            p AS (SELECT vf, vt, unnest(slips) AS slip, len(slips) AS n_states FROM d)
            SELECT {b_vf} AS lo, {b_vt} AS hi, slip, n_states, count(*) AS v
            FROM p GROUP BY ALL HAVING lo < hi""",
        "slip, n_states",
        "CAST(sum(v) AS BIGINT) AS deals",
    )
    out = {}
    frames = {
        "bookings": bookings.rename(columns={"close_date": "booking_date"}),
        "open": open_,
        "won_future": won_future,
        "win_counts": win_counts,
        "slippage": slippage,
    }
    for f in frames.values():
        for c in ("booking_date", "close_date"):
            if c in f.columns:
                f[c] = pd.to_datetime(f[c])
    # each frame is ordered by (k, keys): origin i's rows are one contiguous slice
    bounds = {
        name: np.searchsorted(f["k"].to_numpy(np.int64), np.arange(n + 1), side="left")
        for name, f in frames.items()
    }
    for i, o in enumerate(ors):
        parts = {}
        for name, f in frames.items():
            cols = [c for c in f.columns if c != "k"]
            lo, hi = bounds[name][i], bounds[name][i + 1]
            parts[name] = f.iloc[lo:hi][cols].reset_index(drop=True)
        out[o] = OriginInputs(o, **parts)
    log.info(
        "forecast inputs at %d origins aggregated in DuckDB in %.2fs (%d booking rows)",
        n,
        time.monotonic() - t0,
        len(bookings),
    )
    return out


def frame_inputs(history: pd.DataFrame, origins: Sequence) -> dict[pd.Timestamp, OriginInputs]:
    """`origin_inputs` over an in-memory history DataFrame (tests, synthetic data): the same SQL
    on an in-memory DuckDB."""
    from orchestration.settings import duckdb_config

    h = history_with_naive_times(history)
    for col in ("segment", "region", "stage_name"):
        h[col] = h[col].astype("object").where(h[col].notna(), None)
    con = duckdb.connect(config=duckdb_config())
    try:
        con.register("_history", h)
        return origin_inputs(con, origins, "_history")
    finally:
        con.close()


def slippage_weights(slippage: pd.DataFrame) -> np.ndarray:
    """Normalized weights over slip days SLIP_MIN..SLIP_MAX from the `slippage` aggregate."""
    hist = np.zeros(SLIP_MAX - SLIP_MIN + 1)
    if len(slippage):
        np.add.at(
            hist,
            slippage["slip"].to_numpy(int) - SLIP_MIN,
            slippage["deals"].to_numpy(float) / slippage["n_states"].to_numpy(float),
        )
    if hist.sum() == 0:  # nothing learned yet: close on the recorded date
        hist[-SLIP_MIN] = 1.0
    return hist / hist.sum()
