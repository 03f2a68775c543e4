"""Forecast benchmark: time to fit and backtest every series at each cadence.

    .venv/bin/python -m benchmarks.forecast [--warehouse PATH] [--as-of YYYY-MM-DD]
                                            [--cadence weekly|monthly|both] [--deals-per-day N]

Without --warehouse it uses the synthetic history (forecasts.synthetic). Prints, per cadence:
the full forecast as of D (all series x all candidates + rolling-origin backtest, as the asset
runs it), per-model fit time per series, and the floor of the same work (seasonal naive only
over the same series and origins), with the ratio side by side.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from forecasts.engine import forecast_as_of, get_config
from forecasts.models import arima, ets, seasonal_naive
from forecasts.periods import as_of_timestamp
from forecasts.series import bookings_as_of, build_series, prepare_history
from forecasts.threads import single_threaded_blas


def _history(args) -> pd.DataFrame:
    if args.warehouse:
        from forecasts.store import connect, read_history

        with connect(args.warehouse, read_only=True) as con:
            return prepare_history(read_history(con))
    from forecasts.synthetic import synthetic_history

    h, _ = synthetic_history(end=args.as_of, deals_per_day=args.deals_per_day)
    return prepare_history(h)


def bench(history: pd.DataFrame, cadence: str, as_of) -> None:
    cfg = get_config(cadence)
    d = as_of_timestamp(as_of)
    series = build_series(
        bookings_as_of(history, d),
        cfg.freq,
        d,
        segments=list(cfg.segments),
        regions=list(cfg.regions),
    )
    n_series = len(series)
    print(
        f"\n== {cadence}: {n_series} series x {len(next(iter(series.values())))} periods, "
        f"horizon {cfg.horizon}, {cfg.backtest_origins} backtest origins =="
    )
    # per-model fit time on every series (one origin)
    per_model = {}
    with single_threaded_blas():
        for name, fn, kw in (
            ("snaive", seasonal_naive, {}),
            ("ets", ets, {"configs": cfg.ets_configs}),
            ("arima", arima, {"orders": cfg.arima_orders, "seasonal_orders": cfg.seasonal_orders}),
        ):
            t0 = time.perf_counter()
            for y in series.values():
                fn(y, cfg.horizon, cfg.freq, **kw)
            per_model[name] = (time.perf_counter() - t0) / n_series
    for name, s in per_model.items():
        print(f"  fit {name:<7} {1000 * s:8.1f} ms/series")
    # full run as the asset does it
    t0 = time.perf_counter()
    run = forecast_as_of(history, d, cadence, cfg)
    full = time.perf_counter() - t0
    # floor: seasonal naive on the same series at the same origins (no selection, no pipeline)
    t0 = time.perf_counter()
    for k in range(cfg.backtest_origins + 1):
        origin = d - (pd.Timedelta(weeks=k) if cfg.freq == "W" else pd.DateOffset(months=k))
        ss = build_series(bookings_as_of(history, origin), cfg.freq, origin)
        for y in ss.values():
            seasonal_naive(y, cfg.horizon, cfg.freq)
    floor = time.perf_counter() - t0
    acc = run.accuracy()
    a1 = acc[(acc["series_key"] == "total") & (acc["horizon"] == 1)]["accuracy"]
    print(
        f"  full forecast+backtest : {full:8.2f} s  (fit {run.timings['fit_s']:.2f} s, "
        f"backtest {run.timings['backtest_s']:.2f} s)"
    )
    print(f"  floor (snaive only)    : {floor:8.2f} s")
    print(f"  ratio full/floor       : {full / max(floor, 1e-9):8.1f}x")
    if len(a1):
        print(f"  backtest accuracy h=1 (total, 1-WAPE): {a1.iloc[0]:.1%}")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--warehouse", help="DuckDB file with marts.opportunity_history")
    p.add_argument("--as-of", default="2025-12-01")
    p.add_argument("--cadence", default="both", choices=["weekly", "monthly", "both"])
    p.add_argument("--deals-per-day", type=float, default=12.0)
    args = p.parse_args()
    t0 = time.perf_counter()
    history = _history(args)
    print(f"history: {len(history)} intervals ({time.perf_counter() - t0:.1f} s to prepare)")
    for cadence in ["weekly", "monthly"] if args.cadence == "both" else [args.cadence]:
        bench(history, cadence, args.as_of)


if __name__ == "__main__":
    main()
