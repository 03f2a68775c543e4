"""Forecast benchmark: one partition as the asset runs it, cold, cached and next period,
side by side with the floor of the same work.

    .venv/bin/python -m benchmarks.forecast [--warehouse PATH] [--as-of YYYY-MM-DD]
        [--cadence weekly|monthly|both] [--deals-per-day N] [--profile full|fast]

`--warehouse` is only read: its `marts.opportunity_history` is copied into a temp DuckDB file
(the runs write forecasts and the fit cache there). Without it the synthetic history
(forecasts.synthetic) is used. Per cadence it prints, measured in the same process one after
the other:

* full       `run_forecast_partition` with an empty fit cache (inputs SQL, every fit, writes);
* cached     the same partition again (unchanged input: every fit reused);
* next       the next period's partition (a week / a month later: one new origin to fit);
* floor      the same bookings series at the same origins, one SQL per origin in one DuckDB
             connection, and seasonal naive on each (no model selection, no pipeline, no writes);

with wall seconds, model fits, the process's RSS growth during the step (sampled every 20 ms)
and the backtest accuracy (1 - WAPE) of the published total at h=1..3.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import duckdb
import pandas as pd

from forecasts.engine import _shift, get_config
from forecasts.models import seasonal_naive
from forecasts.periods import as_of_timestamp
from forecasts.publish import run_forecast_partition
from forecasts.series import build_series
from orchestration.settings import duckdb_config

PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


class PeakRss:
    """RSS growth of this process while the block runs (peak minus start)."""

    def __enter__(self):
        self.start = self.peak = _rss()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._sample, daemon=True)
        self._t.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, _rss())
        self.growth_mb = (self.peak - self.start) / 2**20


def _make_warehouse(args, dest: Path) -> None:
    con = duckdb.connect(str(dest), config=duckdb_config())
    try:
        con.execute("CREATE SCHEMA marts")
        if args.warehouse:
            con.execute(f"ATTACH '{args.warehouse}' AS src (READ_ONLY)")
            con.execute(
                "CREATE TABLE marts.opportunity_history AS "
                "SELECT * FROM src.marts.opportunity_history"
            )
            con.execute("DETACH src")
        else:
            from forecasts.synthetic import synthetic_history

            end = as_of_timestamp(args.as_of) + pd.Timedelta(days=40)
            h, _ = synthetic_history(end=str(end.date()), deals_per_day=args.deals_per_day)
            h["close_date"] = h["close_date"].dt.date
            con.register("h", h)
            con.execute("CREATE TABLE marts.opportunity_history AS SELECT * FROM h")
        con.execute("CHECKPOINT")
    finally:
        con.close()


def floor_on(con: duckdb.DuckDBPyConnection, cadence: str, as_of) -> int:
    """Seasonal naive on the bookings series known at each forecast origin, read directly with
    `con`; returns the number of origins. (Also the forecast floor of benchmarks/e2e.py.)"""
    cfg = get_config(cadence)
    d = as_of_timestamp(as_of)
    origins = [d] + [_shift(d, k, cfg.freq) for k in range(1, cfg.backtest_origins + 1)]
    for o in origins:
        b = con.execute(
            "SELECT close_date AS booking_date, coalesce(segment, 'Unknown') AS segment, "
            "coalesce(region, 'Unknown') AS region, sum(amount_usd) AS amount_usd "
            "FROM marts.opportunity_history WHERE valid_from <= ? AND "
            "(valid_to IS NULL OR valid_to > ?) AND is_won AND close_date < ? GROUP BY ALL",
            [o.to_pydatetime(), o.to_pydatetime(), o.date()],
        ).df()
        b["booking_date"] = pd.to_datetime(b["booking_date"])
        for y in build_series(b, cfg.freq, o).values():
            seasonal_naive(y, cfg.horizon, cfg.freq)
    return len(origins)


def floor(warehouse: Path, cadence: str, as_of) -> float:
    """`floor_on` with its own read-only connection; wall seconds."""
    t0 = time.perf_counter()
    con = duckdb.connect(str(warehouse), read_only=True, config=duckdb_config())
    try:
        floor_on(con, cadence, as_of)
    finally:
        con.close()
    return time.perf_counter() - t0


def _accuracy(res) -> str:
    acc = res.run.accuracy()
    tot = acc[acc["series_key"] == "total"].set_index("horizon")["accuracy"]
    return " / ".join(f"{tot.get(h, float('nan')):.1%}" for h in (1, 2, 3))


def bench(warehouse: Path, cadence: str, as_of) -> None:
    cfg = get_config(cadence)
    d = as_of_timestamp(as_of)
    nxt = _shift(d, -1, cfg.freq)
    print(
        f"\n== {cadence} as of {d.date()}: horizon {cfg.horizon}, "
        f"{cfg.backtest_origins} backtest origins; load average {os.getloadavg()[0]:.1f} =="
    )
    print(f"  {'step':<22} {'wall s':>8} {'inputs s':>9} {'fits':>5} {'reused':>6} {'+RSS MB':>8}")
    rows = {}
    for name, day in (("full (empty cache)", d), ("cached rerun", d), ("next period", nxt)):
        with PeakRss() as mem:
            t0 = time.perf_counter()
            res = run_forecast_partition(cadence, day, f"bench-{name}", warehouse, config=cfg)
            wall = time.perf_counter() - t0
        rows[name] = (wall, res)
        print(
            f"  {name:<22} {wall:8.2f} {res.timings['inputs_s']:9.2f} "
            f"{res.run.timings['fits']:5d} {res.run.timings['cached']:6d} {mem.growth_mb:8.0f}"
        )
    with PeakRss() as mem:
        fl = floor(warehouse, cadence, d)
    print(f"  {'floor (snaive only)':<22} {fl:8.2f} {'':>9} {'':>5} {'':>6} {mem.growth_mb:8.0f}")
    full = rows["full (empty cache)"][0]
    print(
        f"  ratios to the floor: full {full / fl:.1f}x, cached rerun "
        f"{rows['cached rerun'][0] / fl:.1f}x, next period {rows['next period'][0] / fl:.1f}x; "
        f"next period / full {rows['next period'][0] / full:.0%}"
    )
    print(
        f"  backtest accuracy of the total, h=1/2/3: {_accuracy(rows['full (empty cache)'][1])}"
        f" (cached rerun {_accuracy(rows['cached rerun'][1])})"
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--warehouse", help="DuckDB file with marts.opportunity_history (read only)")
    p.add_argument("--as-of", default="2025-12-01")
    p.add_argument("--cadence", default="both", choices=["weekly", "monthly", "both"])
    p.add_argument("--deals-per-day", type=float, default=12.0)
    p.add_argument("--profile", choices=["full", "fast"], default=None)
    args = p.parse_args()
    if args.profile:
        os.environ["SALESOPS_FORECAST_PROFILE"] = args.profile
    with tempfile.TemporaryDirectory(prefix="salesops-bench-forecast-") as tmp:
        wh = Path(tmp) / "warehouse.duckdb"
        t0 = time.perf_counter()
        _make_warehouse(args, wh)
        con = duckdb.connect(str(wh), read_only=True)
        n = con.execute("SELECT count(*) FROM marts.opportunity_history").fetchone()[0]
        con.close()
        print(f"history: {n:,} intervals ({time.perf_counter() - t0:.1f} s to copy)")
        for cadence in ["weekly", "monthly"] if args.cadence == "both" else [args.cadence]:
            bench(wh, cadence, args.as_of)


if __name__ == "__main__":
    main()
