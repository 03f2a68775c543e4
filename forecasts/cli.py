"""`python -m forecasts backtest --csv FILE --freq W|M --horizon H --origins N [--json]`.

Reads any `date,value` CSV, buckets dates into Monday-start weeks (W) or calendar months (M)
summing values that fall in the same period, runs the rolling-origin backtest of every model and
prints MASE, sMAPE, WAPE and interval coverage per model plus the model it would pick.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from forecasts.backtest import MIN_TRAIN, rolling_origin
from forecasts.models import MODEL_NAMES
from forecasts.periods import period_index, period_starts


class InputError(ValueError):
    """A problem with the input file, phrased so the user knows what to fix."""


def read_series(path: str | Path, freq: str, fill_zero: bool = False) -> pd.Series:
    """Read a `date,value` CSV into a regular series at `freq` (line numbers in errors are the
    file's, header = line 1)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: file not found")
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: not a readable CSV file ({exc})") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{p}: file is empty (expected a header line 'date,value')") from None
    cols = {c.strip().lower(): c for c in df.columns}
    missing = [c for c in ("date", "value") if c not in cols]
    if missing:
        raise InputError(
            f"{p}: missing column(s) {', '.join(missing)}; found {list(df.columns)} "
            "(expected a header line 'date,value')"
        )
    dates_raw, values_raw = df[cols["date"]].str.strip(), df[cols["value"]].str.strip()
    dates = pd.to_datetime(dates_raw, errors="coerce", format="mixed", utc=True)
    bad = dates.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{p}: line {i + 2}, column 'date': cannot parse {dates_raw.iloc[i]!r} as a date "
            f"({int(bad.sum())} bad date(s) in total; use ISO format YYYY-MM-DD)"
        )
    values = pd.to_numeric(values_raw, errors="coerce")
    bad = values.isna() | ~np.isfinite(values.fillna(0).to_numpy())
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{p}: line {i + 2}, column 'value': {values_raw.iloc[i]!r} is not a number "
            f"({int(bad.sum())} bad value(s) in total)"
        )
    starts = period_starts(dates.dt.tz_localize(None), freq)
    agg = pd.Series(values.to_numpy(dtype=float)).groupby(starts.to_numpy()).sum()
    full = period_index(agg.index.min(), agg.index.max(), freq)
    gaps = full.difference(agg.index)
    if len(gaps) and not fill_zero:
        raise InputError(
            f"{p}: no rows for {len(gaps)} period(s), first {gaps[0].date()}; the series must be "
            "regular (pass --fill-zero to treat missing periods as 0)"
        )
    y = agg.reindex(full, fill_value=0.0).astype(float)
    y.index = pd.DatetimeIndex(y.index)
    return y


def _fmt(v: float, pct: bool = False) -> str:
    if v is None or not np.isfinite(v):
        return "n/a"
    return f"{100 * v:.1f}%" if pct else f"{v:.3f}"


def cmd_backtest(args: argparse.Namespace) -> int:
    y = read_series(args.csv, args.freq, args.fill_zero)
    min_needed = MIN_TRAIN + args.horizon + args.origins - 1
    if len(y) < min_needed:
        raise InputError(
            f"{args.csv}: series too short: {len(y)} {args.freq} periods "
            f"({y.index[0].date()}..{y.index[-1].date()}); horizon {args.horizon} with "
            f"{args.origins} origins needs at least {min_needed}"
        )
    models = tuple(m.strip() for m in args.models.split(",") if m.strip()) or MODEL_NAMES
    unknown = [m for m in models if m not in MODEL_NAMES]
    if unknown:
        raise InputError(
            f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODEL_NAMES)}"
        )
    res = rolling_origin(y, args.freq, args.horizon, args.origins, models=models)
    if args.json:
        out = {
            "file": str(args.csv),
            "freq": args.freq,
            "horizon": args.horizon,
            "n_origins": args.origins,
            "periods": len(y),
            "start": str(y.index[0].date()),
            "end": str(y.index[-1].date()),
        } | res.to_dict()
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(
        f"series: {len(y)} periods ({args.freq}) {y.index[0].date()} .. {y.index[-1].date()}; "
        f"horizon {args.horizon}, {args.origins} origins (expanding window, refit each)"
    )
    print(f"{'model':<8} {'MASE':>7} {'sMAPE':>8} {'WAPE':>8} {'cov80':>7} {'cov95':>7} {'n':>5}")
    for r in res.summary.itertuples():
        print(
            f"{r.model:<8} {_fmt(r.mase):>7} {r.smape:>7.2f}% {_fmt(r.wape, True):>8} "
            f"{_fmt(r.coverage80, True):>7} {_fmt(r.coverage95, True):>7} {r.n:>5}"
        )
    print(f"chosen: {res.chosen} (lowest MASE)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m forecasts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    bt = sub.add_parser("backtest", help="rolling-origin backtest of a date,value CSV")
    bt.add_argument("--csv", required=True, help="CSV file with columns date,value")
    bt.add_argument("--freq", required=True, choices=["W", "M"], help="W weekly, M monthly")
    bt.add_argument("--horizon", type=int, required=True, help="periods ahead per origin")
    bt.add_argument("--origins", type=int, required=True, help="number of forecast origins")
    bt.add_argument("--json", action="store_true", help="machine-readable output")
    bt.add_argument("--fill-zero", action="store_true", help="missing periods count as 0")
    bt.add_argument("--models", default="", help=f"comma list, default {','.join(MODEL_NAMES)}")
    bt.set_defaults(func=cmd_backtest)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "horizon", 1) < 1 or getattr(args, "origins", 1) < 1:
        print("error: --horizon and --origins must be >= 1", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
