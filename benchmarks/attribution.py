"""Attribution at scale: Markov and Shapley on 1M journeys over 12 channels, next to the floor.

    .venv/bin/python -m benchmarks.attribution [--journeys 1000000] [--channels 12] [--repeat 3]
    .venv/bin/python -m benchmarks.attribution --warehouse HOME/warehouse.duckdb [--repeat 3]

With ``--warehouse`` the pipeline's own step (`build_data_driven`) runs on a copy of that
warehouse's journey table (the warehouse is only read) next to the floor of the end-to-end
benchmark (the journeys grouped into ordered paths in DuckDB), with the process's RSS growth.

The floor is the work no attribution can avoid: read the touch file and group touches into
ordered paths (numpy: read Parquet + stable sort by journey/position + offsets; and the same
grouping in DuckDB with ``list(channel order by position)``). Each measured stage prints its
time and its ratio to the numpy floor, measured in the same run (best of --repeat).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from assets.attribution.journeys import Journeys, from_touches
from assets.attribution.markov import chain_from_journeys, markov, removal_effects
from assets.attribution.models import Settings, channel_credits
from assets.attribution.rules import RULE_MODELS
from assets.attribution.shapley import conversion_rate_shapley, shapley


def generate(n_journeys: int, n_channels: int, seed: int = 7) -> pa.Table:
    """Synthetic touches: lengths 1..10 (mean ~3), channel effects planted on conversion."""
    rng = np.random.default_rng(seed)
    lengths = np.minimum(rng.geometric(0.33, n_journeys), 10)
    n_touches = int(lengths.sum())
    journey = np.repeat(np.arange(n_journeys, dtype=np.int64), lengths)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    position = np.arange(n_touches) - np.repeat(starts, lengths)
    popularity = rng.dirichlet(np.ones(n_channels) * 2)
    channel = rng.choice(n_channels, size=n_touches, p=popularity)
    effect = np.linspace(0.02, 0.5, n_channels)
    logit = -3.0 + np.add.reduceat(effect[channel], starts)
    converted = rng.random(n_journeys) < 1 / (1 + np.exp(-logit))
    value = np.where(converted, rng.lognormal(9, 1, n_journeys).round(2), 0.0)
    names = np.array([f"channel_{i:02d}" for i in range(n_channels)], dtype=object)
    # write rows shuffled, so grouping has real work to do
    perm = rng.permutation(n_touches)
    return pa.table(
        {
            "journey_id": journey[perm],
            "position": position[perm].astype(np.int32),
            "channel": pa.array(names[channel[perm]]).dictionary_encode(),
            "converted": np.repeat(converted, lengths)[perm].astype(np.int8),
            "value": np.repeat(value, lengths)[perm],
        }
    )


def best(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def floor_numpy(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = pq.read_table(path)
    j = t["journey_id"].to_numpy()
    pos = t["position"].to_numpy()
    ch = t["channel"].combine_chunks().indices.to_numpy()
    order = np.argsort(j * (int(pos.max()) + 1) + pos, kind="stable")  # one-key stable sort
    offsets = np.concatenate([[0], np.cumsum(np.bincount(j[order]))])
    return offsets, ch[order], order


def floor_duckdb(path: Path) -> int:
    with duckdb.connect() as con:
        rel = con.sql(
            f"select journey_id, list(channel order by position) as path "
            f"from read_parquet('{path}') group by journey_id"
        )
        return len(rel.to_arrow_table())


def read_journeys(path: Path) -> Journeys:
    df = pq.read_table(path).to_pandas()
    return from_touches(df)


def _rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux >= 4.0)


def warehouse_bench(warehouse: Path, repeat: int) -> None:
    from assets.attribution.warehouse import JOURNEYS_TABLE, build_data_driven, fit_paths
    from assets.attribution.warehouse import path_stats as paths_of
    from orchestration.settings import duckdb_config

    with tempfile.TemporaryDirectory(prefix="salesops-attr-bench-") as tmp:
        db = Path(tmp) / "warehouse.duckdb"
        with duckdb.connect(str(db)) as con:
            con.execute(f"attach '{warehouse}' as src (read_only)")
            con.execute("create schema intermediate")
            con.execute(f"create table {JOURNEYS_TABLE} as select * from src.{JOURNEYS_TABLE}")
            n = con.execute(f"select count(*) from {JOURNEYS_TABLE}").fetchone()[0]
        print(f"{warehouse}: {n:,} journey rows copied to {db}")
        con = duckdb.connect(str(db), config=duckdb_config())
        floor, _ = best(
            lambda: con.sql(
                "select opportunity_id, list(channel order by touch_position) as path "
                f"from {JOURNEYS_TABLE} group by 1"
            ).to_arrow_table(),
            repeat,
        )
        t_paths, stats = best(lambda: paths_of(con), repeat)
        t_fit, _ = best(lambda: fit_paths(stats.closed), repeat)
        base = _rss_mb()
        _reset_peak()
        t_step, summary = best(lambda: build_data_driven(con), repeat)
        peak = _rss_mb("VmHWM")
        t_view, _ = best(
            lambda: con.execute(
                "create or replace table main.materialised as "
                "select * from marts.attribution_data_driven"
            ),
            repeat,
        )
        load = os.getloadavg()[0]
        con.close()
        rows = [
            ("floor: journeys grouped into ordered paths", floor),
            ("path_stats (paths + counts, in DuckDB)", t_paths),
            ("fit_paths (Markov + Shapley + rate game)", t_fit),
            ("build_data_driven (the asset's work)", t_step),
            ("(publish) materialise the per-touch view", t_view),
        ]
        print(
            f"{stats.journeys:,} journeys, {stats.touches:,} touches, {stats.paths:,} distinct "
            f"paths; load average {load:.1f}; best of {repeat}"
        )
        print(f"\n{'stage':<46}{'seconds':>9}{'x floor':>9}")
        for name, secs in rows:
            print(f"{name:<46}{secs:>9.3f}{secs / floor:>9.2f}")
        print(
            f"\nRSS before the step {base:,.0f} MB, peak during it {peak:,.0f} MB "
            f"(growth {peak - base:,.0f} MB); P(win) {summary.markov.conversion_probability:.4f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--journeys", type=int, default=1_000_000)
    ap.add_argument("--channels", type=int, default=12)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--warehouse", type=Path, help="benchmark the asset on this warehouse")
    args = ap.parse_args()
    if args.warehouse:
        warehouse_bench(args.warehouse.resolve(), args.repeat)
        return
    with tempfile.TemporaryDirectory(prefix="salesops-attr-bench-") as tmp:
        path = Path(tmp) / "touches.parquet"
        t0 = time.perf_counter()
        table = generate(args.journeys, args.channels)
        pq.write_table(table, path)
        print(
            f"{args.journeys:,} journeys, {table.num_rows:,} touches, {args.channels} channels "
            f"(generated + written in {time.perf_counter() - t0:.1f} s)"
        )
        del table
        floor_np, _ = best(lambda: floor_numpy(path), args.repeat)
        floor_db, _ = best(lambda: floor_duckdb(path), args.repeat)
        t_read, journeys = best(lambda: read_journeys(path), args.repeat)
        t_chain, chain = best(lambda: chain_from_journeys(journeys, 1), args.repeat)
        t_solve, result = best(lambda: removal_effects(chain), args.repeat)
        t_markov, _ = best(lambda: markov(journeys, 1), args.repeat)
        t_markov3, _ = best(lambda: markov(journeys, 3), args.repeat)
        t_shap, shap = best(lambda: shapley(journeys, "coalitions"), args.repeat)
        t_simpl, _ = best(lambda: shapley(journeys, "simplified"), args.repeat)
        t_rate, rate = best(lambda: conversion_rate_shapley(journeys), args.repeat)
        t_rules, _ = best(
            lambda: channel_credits(journeys, list(RULE_MODELS), Settings()), args.repeat
        )
        rows = [
            ("floor: read + group paths (numpy)", floor_np),
            ("floor: read + group paths (DuckDB list())", floor_db),
            ("read + build Journeys (pandas)", t_read),
            ("markov order 1: count transitions", t_chain),
            ("markov order 1: exact solves + lift", t_solve),
            ("markov order 1: total", t_markov),
            ("markov order 3: total", t_markov3),
            ("shapley: 2^12 coalitions (exact)", t_shap),
            ("shapley: simplified formula (exact)", t_simpl),
            ("shapley: conversion-rate game (exact)", t_rate),
            ("6 rule-based models, channel totals", t_rules),
            ("read + markov(1) + shapley", t_read + t_markov + t_shap),
        ]
        print(f"\n{'stage':<44}{'seconds':>9}{'x floor':>9}")
        for name, secs in rows:
            print(f"{name:<44}{secs:>9.3f}{secs / floor_np:>9.2f}")
        frame = pd.DataFrame(
            {
                "channel": list(result.channels),
                "planted_logit_effect": np.linspace(0.02, 0.5, args.channels).round(3),
                "removal_effect": result.removal_effects.round(4),
                "odds_ratio": result.odds_ratio.round(3),
                "rate_shapley": rate["rate_contribution"].to_numpy().round(4),
                "markov_credit": result.conversions.round(1),
                "shapley_credit": shap.conversions.round(1),
            }
        )
        print(
            f"\nP(conversion) = {result.conversion_probability:.4f}. Planted effects rise with the "
            "channel number; channel popularity is random, so credits (contribution) and\n"
            "odds ratio / rate Shapley (effect) rank channels differently."
        )
        print(frame.to_string(index=False))


if __name__ == "__main__":
    main()
