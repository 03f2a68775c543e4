"""Command line: credited conversions and value per channel for every attribution model.

    python -m assets.attribution PATHS.csv [--format auto|journeys|paths]
        [--path-col path --sep '>' --conv-col total_conversions
         --value-col total_conversion_value --null-col total_null]
        [--models all|markov,shapley,...] [--order 1] [--half-life 7]
        [--shapley-method auto|coalitions|simplified] [--out FILE.csv]

Exit status: 0 on success, 2 on bad input or arguments (one-line message, no traceback).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import pandas as pd

from assets.attribution.inputs import FORMATS, InputError, PathColumns, load_journeys
from assets.attribution.models import ALL_MODELS, Settings, channel_credits, parse_models
from assets.attribution.shapley import METHODS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m assets.attribution",
        description="Multi-touch attribution of conversions and value to marketing channels.",
    )
    p.add_argument("input", help="CSV of journey rows or aggregated paths")
    p.add_argument("--format", choices=FORMATS, default="auto", help="default: from the header")
    p.add_argument("--path-col", default="path", help="paths format: path column (default path)")
    p.add_argument("--sep", default=">", help="paths format: channel separator (default '>')")
    p.add_argument("--conv-col", default="total_conversions", help="paths: conversions column")
    p.add_argument("--value-col", default="total_conversion_value", help="paths: value column")
    p.add_argument("--null-col", default="total_null", help="paths: non-conversions column")
    p.add_argument(
        "--models", default="all", help=f"'all' or a comma list of: {', '.join(ALL_MODELS)}"
    )
    p.add_argument("--order", type=int, default=1, help="Markov chain order (default 1)")
    p.add_argument("--half-life", type=float, default=7.0, help="time decay half-life, days")
    p.add_argument("--shapley-method", choices=METHODS, default="auto")
    p.add_argument("--out", type=Path, help="write the long table (model, channel, ...) as CSV")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    return p


def _wide(credits: pd.DataFrame, column: str) -> pd.DataFrame:
    table = credits.pivot(index="channel", columns="model", values=column)
    table = table[[m for m in credits["model"].unique()]]
    table.loc["TOTAL"] = table.sum()
    table.columns.name = None
    return table


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        models = parse_models(args.models)
        if args.order < 1:
            raise ValueError(f"--order must be >= 1, got {args.order}")
        if not args.half_life > 0:
            raise ValueError(f"--half-life must be > 0, got {args.half_life}")
        cols = PathColumns(args.path_col, args.sep, args.conv_col, args.value_col, args.null_col)
        t0 = time.perf_counter()
        journeys, fmt = load_journeys(args.input, args.format, cols)
        settings = Settings(args.half_life, args.order, args.shapley_method)
        credits = channel_credits(journeys, models, settings)
        elapsed = time.perf_counter() - t0
    except (InputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{args.input}: {fmt} format, {journeys.n_journeys:,} journeys, "
        f"{journeys.n_touches:,} touches, {journeys.n_channels} channels, "
        f"{journeys.total_conversions:,.6g} conversions, value {journeys.total_value:,.6g} "
        f"({elapsed:.2f} s)"
    )
    if journeys.total_conversions <= 0:
        print("warning: no conversions in the input: every credit is 0", file=sys.stderr)
    with pd.option_context("display.width", 200, "display.max_columns", 50):
        print("\ncredited conversions")
        print(_wide(credits, "conversions").to_string(float_format=lambda x: f"{x:,.2f}"))
        print("\ncredited value")
        print(_wide(credits, "value").to_string(float_format=lambda x: f"{x:,.2f}"))
        effects = credits[credits["model"].isin(["markov", "shapley"])]
        if not effects.empty:
            table = (
                effects.groupby("channel")[["removal_effect", "odds_ratio", "rate_contribution"]]
                .max()
                .dropna(axis=1, how="all")
            )
            print("\nchannel effects (removal_effect: share of conversions lost without the")
            print("channel; odds_ratio: conversion odds with / without it, Markov chain;")
            print("rate_contribution: Shapley value in the conversion-rate game)")
            print(table.to_string(float_format=lambda x: f"{x:,.4f}"))
    if args.out:
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            credits.to_csv(args.out, index=False)
        except OSError as exc:
            print(f"error: cannot write {args.out}: {exc}", file=sys.stderr)
            return 2
        print(f"\nwrote {len(credits)} rows to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
