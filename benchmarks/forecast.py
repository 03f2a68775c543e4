"""Forecast benchmark: one partition as the asset runs it, cold, cached and next period,
side by side with the floor of the same work.

    .venv/bin/python -m benchmarks.forecast [--warehouse PATH] [--as-of YYYY-MM-DD]
        [--cadence weekly|monthly|both] [--deals-per-day N] [--profile full|fast]
        [--no-serial] [--in-place]

`--warehouse` is only read: its `marts.opportunity_history` is copied into a temp DuckDB file
(the runs write forecasts and the fit cache there); with `--in-place` the runs use the
warehouse itself (a copy you own: it gets forecasts and fit-cache rows; its fit cache is
cleared first). Without `--warehouse` the synthetic history (forecasts.synthetic) is used. Per
cadence it prints, measured in the same process one after the other:

* full       `run_forecast_partition` with an empty fit cache (inputs SQL, every fit, in the
             fit pool, writes);
* serial     the same without the cache and with one fitting process (`workers=1`): the
             pool's gain, and a check that both give the same forecasts and backtest;
* cached     the same partition again (unchanged input: every fit reused);
* next       the next period's partition (a week / a month later: one new origin to fit);
* floor      `forecasts.floor.direct_fits`: the same model fits (models, grids, series,
             origins) done directly: one SQL per origin, a plain loop, no cache or writes;
* snaive     the earlier floor: seasonal naive only, same SQL per origin;

with wall seconds, the fit seconds, model fits, RSS growth during the step (this process and
the fit pool's, sampled every 20 ms), the load average and the backtest accuracy (1 - WAPE)
of the published total at h=1..3.
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
from forecasts.fitpool import default_workers
from forecasts.floor import direct_fits
from forecasts.periods import as_of_timestamp
from forecasts.publish import run_forecast_partition
from orchestration.settings import duckdb_config

PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss(pid: int | str = "self") -> int:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * PAGE
    except OSError:  # the process ended
        return 0


def _children(pid: int) -> list[int]:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out += [int(c) for c in fh.read().split()]
    except OSError:
        return out
    return out + [g for c in out for g in _children(c)]


class PeakRss:
    """RSS growth while the block runs (peak minus start): this process, plus its child
    processes (the fit pool) with `children=True`."""

    def __init__(self, children: bool = False):
        self.children = children

    def _now(self) -> int:
        total = _rss()
        if self.children:
            total += sum(_rss(c) for c in _children(os.getpid()))
        return total

    def __enter__(self):
        self.start = self.peak = self._now()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._sample, daemon=True)
        self._t.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._now())

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._now())
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
    """The forecast floor (also benchmarks/e2e.py's): the model fits a cold-cache run makes
    (same models, grids, series and origins), done directly with `con` by
    `forecasts.floor.direct_fits`; returns the number of ETS/ARIMA fits."""
    return len(direct_fits(con, cadence, as_of).fitted)


def snaive_floor_on(con: duckdb.DuckDBPyConnection, cadence: str, as_of) -> int:
    """The earlier floor: seasonal naive only on the bookings series known at each fit origin
    (one SQL per origin); returns the number of origins."""
    return direct_fits(con, cadence, as_of, snaive_only=True).origins


def floor(warehouse: Path, cadence: str, as_of, fn=floor_on) -> float:
    """`fn` (`floor_on` or `snaive_floor_on`) with its own read-only connection; wall s."""
    t0 = time.perf_counter()
    con = duckdb.connect(str(warehouse), read_only=True, config=duckdb_config())
    try:
        fn(con, cadence, as_of)
    finally:
        con.close()
    return time.perf_counter() - t0


def _accuracy(res) -> str:
    acc = res.run.accuracy()
    tot = acc[acc["series_key"] == "total"].set_index("horizon")["accuracy"]
    return " / ".join(f"{tot.get(h, float('nan')):.1%}" for h in (1, 2, 3))


def _same(a, b) -> bool:
    """Published forecast, candidates and backtest equal (float tolerance 1e-9 relative)."""
    try:
        for x, y in ((a.run.forecast, b.run.forecast), (a.run.candidates, b.run.candidates)):
            pd.testing.assert_frame_equal(x, y, rtol=1e-9)
        pd.testing.assert_frame_equal(a.run.backtest, b.run.backtest, rtol=1e-9)
    except AssertionError:
        return False
    return True


def bench(warehouse: Path, cadence: str, as_of, serial: bool = True) -> None:
    cfg = get_config(cadence)
    d = as_of_timestamp(as_of)
    nxt = _shift(d, -1, cfg.freq)
    print(
        f"\n== {cadence} as of {d.date()}: horizon {cfg.horizon}, "
        f"{cfg.backtest_origins} backtest origins, {default_workers()} fitting process(es); "
        f"load average {os.getloadavg()[0]:.1f} =="
    )
    print(
        f"  {'step':<26} {'wall s':>8} {'inputs s':>9} {'fit s':>6} {'fits':>5} {'reused':>6} "
        f"{'+RSS MB':>8} {'load':>5}  fitting processes (fits in the 2nd), distinct fits"
    )
    rows = {}
    steps = [("full (empty cache)", d, {}), ("cached rerun", d, {}), ("next period", nxt, {})]
    if serial:
        steps.insert(1, ("full, serial fits", d, {"use_cache": False, "workers": 1}))
    for name, day, kw in steps:
        with PeakRss(children=True) as mem:
            t0 = time.perf_counter()
            res = run_forecast_partition(cadence, day, f"bench-{name}", warehouse, config=cfg, **kw)
            wall = time.perf_counter() - t0
        rows[name] = (wall, res)
        print(
            f"  {name:<26} {wall:8.2f} {res.timings['inputs_s']:9.2f} "
            f"{res.run.timings['prefit_s']:6.2f} {res.run.timings['fits']:5d} "
            f"{res.run.timings['cached']:6d} {mem.growth_mb:8.0f} {os.getloadavg()[0]:5.1f}  "
            f"{res.run.timings['fit_workers']} ({res.run.timings['fits_in_workers']}), "
            f"{res.run.timings['distinct_fits']}"
        )
    floors = {}
    for name, fn in (("floor (same fits)", floor_on), ("floor (snaive only)", snaive_floor_on)):
        with PeakRss() as mem:
            floors[name] = floor(warehouse, cadence, d, fn)
        print(
            f"  {name:<26} {floors[name]:8.2f} {'':>9} {'':>6} {'':>5} {'':>6} "
            f"{mem.growth_mb:8.0f} {os.getloadavg()[0]:5.1f}"
        )
    fl = floors["floor (same fits)"]
    full = rows["full (empty cache)"][0]
    print(
        f"  ratios to the floor (same fits): full {full / fl:.2f}x, cached rerun "
        f"{rows['cached rerun'][0] / fl:.2f}x, next period {rows['next period'][0] / fl:.2f}x; "
        f"next period / full {rows['next period'][0] / full:.0%}; full / snaive floor "
        f"{full / floors['floor (snaive only)']:.1f}x"
    )
    if serial:
        s_res = rows["full, serial fits"][1]
        print(
            f"  serial fits / fit pool: {rows['full, serial fits'][0] / full:.2f}x; "
            f"results identical: {_same(rows['full (empty cache)'][1], s_res)}"
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
    p.add_argument("--no-serial", action="store_true", help="skip the serial-fits run")
    p.add_argument(
        "--in-place",
        action="store_true",
        help="run on --warehouse itself (a copy you own; its forecasts.fit_cache is dropped)",
    )
    args = p.parse_args()
    if args.profile:
        os.environ["SALESOPS_FORECAST_PROFILE"] = args.profile
    cadences = ["weekly", "monthly"] if args.cadence == "both" else [args.cadence]
    if args.in_place:
        if not args.warehouse:
            p.error("--in-place needs --warehouse")
        wh = Path(args.warehouse)
        con = duckdb.connect(str(wh), config=duckdb_config())
        con.execute("DROP TABLE IF EXISTS forecasts.fit_cache")
        n = con.execute("SELECT count(*) FROM marts.opportunity_history").fetchone()[0]
        con.close()
        print(f"history: {n:,} intervals (in place: {wh})")
        for cadence in cadences:
            bench(wh, cadence, args.as_of, serial=not args.no_serial)
        return
    with tempfile.TemporaryDirectory(prefix="salesops-bench-forecast-") as tmp:
        wh = Path(tmp) / "warehouse.duckdb"
        t0 = time.perf_counter()
        _make_warehouse(args, wh)
        con = duckdb.connect(str(wh), read_only=True)
        n = con.execute("SELECT count(*) FROM marts.opportunity_history").fetchone()[0]
        con.close()
        print(f"history: {n:,} intervals ({time.perf_counter() - t0:.1f} s to copy)")
        for cadence in cadences:
            bench(wh, cadence, args.as_of, serial=not args.no_serial)


if __name__ == "__main__":
    main()
