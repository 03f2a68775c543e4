"""One forecast partition end to end, without Dagster: read the marts, forecast as of the
partition date, write `forecasts.forecasts` and the ledger (replacing that partition's rows),
score the ledger against the actuals known at that date.

Memory stays small at any scale: the history is aggregated inside DuckDB (`forecasts.inputs`)
to what the models need at each origin; only those aggregates reach pandas."""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from forecasts import fitcache, models
from forecasts.engine import (
    EngineConfig,
    ForecastRun,
    forecast_as_of,
    forecast_origins,
    get_config,
)
from forecasts.inputs import origin_inputs
from forecasts.ledger import ledger_rows, score_ledger
from forecasts.periods import CADENCE_FREQ, as_of_timestamp, period_end
from forecasts.series import actuals_table
from forecasts.store import (
    connect,
    has_table,
    read_ledger,
    write_backtest_accuracy,
    write_forecasts,
    write_ledger,
)

log = logging.getLogger(__name__)
CURRENCY = "USD"


@dataclass
class PartitionResult:
    cadence: str
    as_of: pd.Timestamp
    run: ForecastRun
    table: pd.DataFrame  # rows written to forecasts.forecasts
    ledger_scores: pd.DataFrame  # ledger scored against actuals known at as_of
    timings: dict = field(default_factory=dict)  # inputs_s, forecast_s, write_s

    @property
    def backtest_accuracy(self) -> float:
        """Backtest accuracy (1 - WAPE) of the published total at horizon 1."""
        acc = self.run.accuracy()
        row = acc[(acc["series_key"] == "total") & (acc["horizon"] == 1)]
        return float(row["accuracy"].iloc[0]) if len(row) else float("nan")


def actuals_for_scoring(bookings: pd.DataFrame, as_of, cadence: str) -> pd.DataFrame:
    """Actuals known at `as_of` (complete periods only) in the shape `score_ledger` takes, from
    the bookings known at `as_of` (`OriginInputs.bookings` or `series.bookings_as_of`)."""
    freq = CADENCE_FREQ[cadence]
    a = actuals_table(bookings, freq, as_of)
    return a.assign(period_end=period_end(a["period_start"], freq), cadence=cadence)


def run_forecast_partition(
    cadence: str,
    as_of,
    run_id: str,
    warehouse: Path | str,
    config: EngineConfig | None = None,
    now: dt.datetime | None = None,
    use_cache: bool = True,
    workers: int | None = None,
) -> PartitionResult:
    """Forecast one partition from the warehouse: aggregate the inputs in DuckDB (read-only),
    reuse cached fits, fit the missing ones (in `workers` processes, default
    `fitpool.default_workers()`), write forecasts, ledger, backtest accuracy and new cache
    entries."""
    d = as_of_timestamp(as_of).normalize()
    cfg = config or get_config(cadence)
    t0 = time.monotonic()
    models.preload()  # statsmodels' import overlaps the inputs query (a fresh process)
    origins = forecast_origins(d, cfg)
    with connect(warehouse, read_only=True) as con:
        if not has_table(con, "marts", "opportunity_history"):
            raise RuntimeError(
                "marts.opportunity_history does not exist: build the dbt marts first"
            )
        inputs = origin_inputs(con, origins)
        models.wait_preload()  # the fit cache's key and the fits import statsmodels
        fits = fitcache.load(con, cadence, origins) if use_cache else fitcache.FitCache()
    t_inputs = time.monotonic() - t0
    log.info(
        "%s forecast as of %s: inputs at %d origins in %.1fs",
        cadence,
        d.date(),
        len(origins),
        t_inputs,
    )
    run = forecast_as_of(None, d, cadence, cfg, inputs=inputs, fits=fits, workers=workers)
    t_fc = time.monotonic() - t0 - t_inputs
    generated_at = (
        pd.Timestamp(now or dt.datetime.now(dt.UTC)).tz_localize(None)
        if (now is None or getattr(now, "tzinfo", None) is not None)
        else pd.Timestamp(now)
    )
    table = run.forecast.assign(currency=CURRENCY, run_id=run_id, generated_at=generated_at)
    for col in ("as_of", "period_start", "period_end"):
        table[col] = pd.to_datetime(table[col]).dt.date
    led = ledger_rows(run.forecast, run_id, generated_at)
    with connect(warehouse) as con:
        write_forecasts(con, table, cadence, d)
        write_ledger(con, led, cadence, d)
        acc = run.accuracy().assign(as_of=d.date(), cadence=cadence)
        write_backtest_accuracy(con, acc, cadence, d)
        if use_cache:
            fitcache.save(con, fits, run_id, generated_at)
        ledger = read_ledger(con, cadence)
    scores = score_ledger(ledger, actuals_for_scoring(inputs[d].bookings, d, cadence))
    timings = {
        "inputs_s": t_inputs,
        "forecast_s": t_fc,
        "write_s": time.monotonic() - t0 - t_inputs - t_fc,
        "total_s": time.monotonic() - t0,
    }
    log.info(
        "%s forecast as of %s written: %d rows, %d fits (%d cached), %.1fs",
        cadence,
        d.date(),
        len(table),
        run.timings["fits"],
        run.timings["cached"],
        timings["total_s"],
    )
    return PartitionResult(cadence, d, run, table, scores, timings)


def _money(v: float) -> str:
    return f"{v:,.0f}"


def forecast_markdown(result: PartitionResult, max_rows: int = 40) -> str:
    """Markdown for Dagster metadata: forecast table and accuracy."""
    f = result.table
    lines = [
        f"**{result.cadence.title()} bookings forecast as of {result.as_of.date()}** (USD)",
        "",
        "| period | series | model | point | 80% interval | 95% interval |",
        "|---|---|---|---:|---:|---:|",
    ]
    order = f.assign(_t=(f["series_key"] != "total").astype(int)).sort_values(
        ["_t", "series_key", "period_start"]
    )
    for r in order.head(max_rows).itertuples(index=False):
        lines.append(
            f"| {r.period_start} | {r.series_key} | {r.model} | {_money(r.point)} | "
            f"{_money(r.lo80)}–{_money(r.hi80)} | {_money(r.lo95)}–{_money(r.hi95)} |"
        )
    if len(f) > max_rows:
        lines.append(f"| … | {len(f) - max_rows} more rows in forecasts.forecasts | | | | |")
    acc = result.run.accuracy()
    tot = acc[acc["series_key"] == "total"]
    lines += [
        "",
        "**Backtest accuracy (1 − WAPE) of the published total**, target 92%",
        "",
        "| horizon | accuracy | origins |",
        "|---:|---:|---:|",
    ]
    for r in tot.itertuples(index=False):
        lines.append(f"| {r.horizon} | {r.accuracy:.1%} | {r.n} |")
    if not result.ledger_scores.empty:
        lines += [
            "",
            "**Ledger: published forecasts scored against actuals**",
            "",
            "| horizon | n | accuracy | bias | cov80 | cov95 | meets 92% |",
            "|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in result.ledger_scores.itertuples(index=False):
            lines.append(
                f"| {r.horizon} | {r.n} | {r.accuracy:.1%} | {r.bias:+.1%} | "
                f"{r.coverage80:.0%} | {r.coverage95:.0%} | "
                f"{'yes' if r.meets_target else 'no'} |"
            )
    return "\n".join(lines)
