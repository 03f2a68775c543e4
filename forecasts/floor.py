"""The floor of the forecast stage: the same model fits, done directly.

A cold forecast run fits every statistical candidate (seasonal naive, ETS, ARIMA with the
configured grids) to every bookings series (total, per segment, per region) at the as-of and at
every backtest origin. `direct_fits` does exactly those fits and nothing else: per fit origin,
one SQL query reads the bookings known then (states valid at the origin, won, close date before
it; amounts summed as the pipeline sums them, so the series are the same to the last bit), the
series are built, and the models are fitted with the pipeline's own fit pool
(`forecasts.fitpool.run_fits`, as many processes as a pipeline run on this machine uses: a
serial floor would flatter a pipeline that fits on both cores). No fit cache, no
pipeline-weighted model or its inputs (open deals, win rates, slippage at the calibration
origins), no selection, reconciliation, ledger or writes, no Dagster: a lower bound for the
stage (benchmarks/forecast.py, benchmarks/e2e.py).

`snaive_only=True` keeps only the seasonal-naive forecasts (the earlier, much lower floor).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from forecasts.engine import (
    MIN_TRAIN_PERIODS,
    STAT_MODELS,
    EngineConfig,
    _grid,
    fit_origins,
    get_config,
)
from forecasts.fitpool import FitTask, run_fits
from forecasts.inputs import HISTORY_TABLE, MICRO, _timestamp_expr
from forecasts.models import seasonal_naive
from forecasts.periods import as_of_timestamp
from forecasts.series import UNKNOWN, build_series
from forecasts.threads import single_threaded_blas

log = logging.getLogger(__name__)


@dataclass
class FloorResult:
    origins: int = 0
    fitted: list[tuple] = field(default_factory=list)  # (origin, series_key, model), fit order
    forecasts: dict[tuple, np.ndarray] = field(default_factory=dict)  # fitted -> (H, 5)
    seconds: float = 0.0


def _bookings_sql(con: duckdb.DuckDBPyConnection, source: str) -> str:
    # amounts summed in integer micro-dollars and rows in the pipeline's order: the series
    # are the pipeline's to the last bit (pandas sums them in row order)
    vf = _timestamp_expr(con, source, "valid_from")
    vt = _timestamp_expr(con, source, "valid_to")
    return f"""
        SELECT CAST(close_date AS DATE) AS booking_date,
               coalesce(CAST(segment AS VARCHAR), '{UNKNOWN}') AS segment,
               coalesce(CAST(region AS VARCHAR), '{UNKNOWN}') AS region,
               CAST(sum(CAST(round(coalesce(CAST(amount_usd AS DOUBLE), 0) * {MICRO})
                             AS HUGEINT)) AS DOUBLE) / {MICRO} AS amount_usd
        FROM {source}
        WHERE {vf} <= $o AND ({vt} IS NULL OR {vt} > $o) AND is_won
          AND CAST(close_date AS DATE) < CAST($o AS DATE)
        GROUP BY ALL
        ORDER BY booking_date, segment, region"""


def direct_fits(
    con: duckdb.DuckDBPyConnection,
    cadence: str,
    as_of,
    config: EngineConfig | None = None,
    snaive_only: bool = False,
    source: str = HISTORY_TABLE,
    workers: int | None = None,
) -> FloorResult:
    """Every model fit a cold-cache forecast as of `as_of` makes, directly (module docstring)."""
    cfg = config or get_config(cadence)
    t0 = time.monotonic()
    sql = _bookings_sql(con, source)
    out = FloorResult()
    H, freq = cfg.horizon, cfg.freq
    models = () if snaive_only else STAT_MODELS
    tasks: list[FitTask] = []
    with single_threaded_blas():
        for i, o in enumerate(fit_origins(as_of_timestamp(as_of), cfg)):
            b = con.execute(sql, {"o": o.to_pydatetime()}).df()
            b["booking_date"] = pd.to_datetime(b["booking_date"])
            series = build_series(
                b,
                freq,
                o,
                start=cfg.history_start,
                segments=list(cfg.segments),
                regions=list(cfg.regions),
            )
            out.origins += 1
            for key, y in series.items():
                if len(y) < MIN_TRAIN_PERIODS:
                    if i == 0:
                        raise ValueError(
                            f"only {len(y)} {cfg.cadence} periods of bookings known at "
                            f"{o.date()} for {key}; need at least {MIN_TRAIN_PERIODS}"
                        )
                    break  # as the pipeline: the rest of this backtest origin is skipped
                seasonal_naive(y, H, freq)
                for model in models:
                    tasks.append(FitTask(model, y, H, freq, _grid(model, cfg)))
                    out.fitted.append((o, key, model))
    values, _ = run_fits(tasks, workers)
    out.forecasts = dict(zip(out.fitted, values, strict=True))
    out.seconds = time.monotonic() - t0
    log.info(
        "forecast floor (%s as of %s): %d fits at %d origins in %.1fs",
        cadence,
        as_of_timestamp(as_of).date(),
        len(out.fitted),
        out.origins,
        out.seconds,
    )
    return out
