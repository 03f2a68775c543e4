"""Pipeline-weighted bottom-up forecast for near horizons.

As of D, for every opportunity open at D (its state interval at D):
    expected bookings in period P = amount_usd x P(win | stage) x P(close in P | still open at D)
- P(win | stage) is learned from deals closed by D: of the deals that were ever in the stage,
  the share that ended won, shrunk toward the stage's default probability (weight `PRIOR_N`).
- The close date distribution is the recorded close date shifted by the slippage learned from
  deals won by D (final close date minus the close date recorded in each earlier open state),
  conditioned on closing on or after D. Slippage is kept as a day histogram, so the cost does not
  grow with the number of deals.
Deals already won at D with a close date on/after D count with probability 1.
The raw expectation misses deals not yet created at D; `calibrate` learns per horizon the ratio
actual / expected at earlier origins (all known at D) and the spread of the residuals, which gives
the point forecast and empirical normal intervals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from forecasts.models import Z80, Z95
from forecasts.periods import as_of_timestamp, next_periods, period_start, period_starts
from forecasts.series import TOTAL, series_key, state_as_of
from sandbox.schema import STAGES

if TYPE_CHECKING:
    from forecasts.inputs import OriginInputs

PRIOR_N = 5.0
SLIP_MIN, SLIP_MAX = -180, 540  # slippage histogram range in days
DEFAULT_PROB = {name: prob / 100.0 for name, prob, _ in STAGES}


def win_rates(history: pd.DataFrame, as_of) -> pd.Series:
    """P(win | deal was in stage) learned from deals closed by `as_of`."""
    d = as_of_timestamp(as_of)
    known = history[history["valid_from"] <= d]
    final = state_as_of(history, d)
    closed = final[final["is_closed"]].set_index("oid")["is_won"]
    opened = known[~known["is_closed"] & known["oid"].isin(closed.index)]
    pairs = opened[["oid", "stage_name"]].drop_duplicates()
    pairs = pairs.assign(won=closed.reindex(pairs["oid"]).to_numpy())
    g = pairs.groupby("stage_name")["won"].agg(["sum", "count"])
    stages = sorted(set(g.index) | {s for s in DEFAULT_PROB if DEFAULT_PROB[s] not in (0.0, 1.0)})
    out = {}
    for s in stages:
        prior = DEFAULT_PROB.get(s, 0.5)
        wins, n = (g.at[s, "sum"], g.at[s, "count"]) if s in g.index else (0.0, 0.0)
        out[s] = (float(wins) + PRIOR_N * prior) / (float(n) + PRIOR_N)
    return pd.Series(out, name="p_win")


def slippage_histogram(history: pd.DataFrame, as_of) -> np.ndarray:
    """Weights over slip days SLIP_MIN..SLIP_MAX (each won deal counts once)."""
    d = as_of_timestamp(as_of)
    known = history[history["valid_from"] <= d]
    final = state_as_of(history, d)
    won = final[final["is_won"]].set_index("oid")["close_date"]
    opened = known[~known["is_closed"] & known["oid"].isin(won.index)]
    hist = np.zeros(SLIP_MAX - SLIP_MIN + 1)
    if len(opened):
        slip = won.reindex(opened["oid"]).to_numpy() - opened["close_date"].to_numpy()
        days = np.clip(slip.astype("timedelta64[D]").astype(int), SLIP_MIN, SLIP_MAX)
        per_deal = opened.groupby("oid")["oid"].transform("size").to_numpy()
        np.add.at(hist, days - SLIP_MIN, 1.0 / per_deal)
    if hist.sum() == 0:  # nothing learned yet: close on the recorded date
        hist[-SLIP_MIN] = 1.0
    return hist / hist.sum()


def win_rates_from_counts(win_counts: pd.DataFrame) -> pd.Series:
    """P(win | stage) from per-stage counts of closed deals (`inputs.OriginInputs.win_counts`:
    stage_name, n, wins), shrunk toward the stage's default probability."""
    g = win_counts.set_index("stage_name")
    stages = sorted(set(g.index) | {s for s in DEFAULT_PROB if DEFAULT_PROB[s] not in (0.0, 1.0)})
    out = {}
    for s in stages:
        prior = DEFAULT_PROB.get(s, 0.5)
        wins, n = (g.at[s, "wins"], g.at[s, "n"]) if s in g.index else (0.0, 0.0)
        out[s] = (float(wins) + PRIOR_N * prior) / (float(n) + PRIOR_N)
    return pd.Series(out, name="p_win")


def expected_bookings(history: pd.DataFrame, as_of, freq: str, horizon: int) -> pd.DataFrame:
    """Raw pipeline expectation per (series_key, horizon) for the `horizon` periods starting at
    the period containing `as_of` (the period of D is horizon 1), from a history DataFrame."""
    from forecasts.inputs import frame_inputs

    d = as_of_timestamp(as_of)
    return expected_from_inputs(frame_inputs(history, [d])[d], freq, horizon)


def expected_from_inputs(inputs: OriginInputs, freq: str, horizon: int) -> pd.DataFrame:
    """`expected_bookings` from the aggregates known at the origin (`inputs.origin_inputs`)."""
    from forecasts.inputs import slippage_weights

    d = inputs.origin
    day0 = d.normalize()
    periods = next_periods(period_start(d, freq) - pd.Timedelta(days=1), horizon, freq)
    bounds = list(periods) + [next_periods(periods[-1], 1, freq)[0]]
    p_win = win_rates_from_counts(inputs.win_counts)
    hist = slippage_weights(inputs.slippage)
    slips = np.arange(SLIP_MIN, SLIP_MAX + 1)

    open_ = inputs.open
    w = open_["amount_usd"].to_numpy(float) * (
        open_["stage_name"].map(p_win).astype("float64").fillna(0.5).to_numpy()
    )
    grouped = (
        open_[["close_date", "segment", "region"]]
        .assign(w=w)
        .groupby(["close_date", "segment", "region"], sort=True)["w"]
        .sum()
        .reset_index()
    )
    # distribution of the close day over the periods, per distinct recorded close date
    day_edges = np.array([(b - day0).days for b in bounds])
    dates, cidx = np.unique(grouped["close_date"].to_numpy(), return_inverse=True)
    base = ((dates - np.datetime64(day0, "ns")) // np.timedelta64(1, "D")).astype(np.int64)
    off = base[:, None] + slips[None, :]  # day offsets from D of each slip outcome
    probs = np.where(off >= 0, hist[None, :], 0.0)
    stale = ~(probs.sum(axis=1) > 0)
    if stale.any():  # stale close date beyond all learned slippage: slip forward from today
        fwd = np.where(slips >= 0, hist, 0.0)
        if fwd.sum() == 0:
            fwd = np.zeros_like(hist)
            fwd[-SLIP_MIN] = 1.0
        probs[stale] = fwd
        off[stale] = slips
    probs = probs / probs.sum(axis=1, keepdims=True)
    per_period = np.column_stack(
        [
            np.where((off >= day_edges[i]) & (off < day_edges[i + 1]), probs, 0.0).sum(axis=1)
            for i in range(horizon)
        ]
    ).reshape(len(dates), horizon)
    vec = per_period[cidx] * grouped["w"].to_numpy(float)[:, None]
    # deals won at D with a close date on/after D count with probability 1
    wf = inputs.won_future
    wvec = np.zeros((len(wf), horizon))
    if len(wf):
        pos = periods.get_indexer(period_starts(wf["close_date"], freq))
        hit = pos >= 0
        wvec[np.flatnonzero(hit), pos[hit]] = wf["amount_usd"].to_numpy(float)[hit].clip(min=0)
    vec = np.vstack([vec, wvec])
    segs = np.concatenate([grouped["segment"].to_numpy(str), wf["segment"].to_numpy(str)])
    regs = np.concatenate([grouped["region"].to_numpy(str), wf["region"].to_numpy(str)])
    expected: dict[str, np.ndarray] = {}
    if len(vec):
        expected[TOTAL] = vec.sum(axis=0)
        for s in sorted(set(segs)):
            expected[series_key(segment=s)] = vec[segs == s].sum(axis=0)
        for r in sorted(set(regs)):
            expected[series_key(region=r)] = vec[regs == r].sum(axis=0)
    if not expected:
        return pd.DataFrame(columns=["series_key", "horizon", "period_start", "expected"])
    # one frame from arrays (the same rows as one frame per key, concatenated)
    n_keys = len(expected)
    return pd.DataFrame(
        {
            "series_key": np.repeat(np.array(list(expected), dtype=object), horizon),
            "horizon": np.tile(np.arange(1, horizon + 1), n_keys),
            "period_start": np.tile(periods.to_numpy(), n_keys),
            "expected": np.concatenate(list(expected.values())),
        }
    )


def _certain(close_date, amount, periods: pd.DatetimeIndex, freq: str) -> np.ndarray:
    vec = np.zeros(len(periods))
    p = period_start(close_date, freq)
    hits = np.flatnonzero(periods == p)
    if hits.size:
        vec[hits[0]] = max(float(amount), 0.0)
    return vec


def calibrate(
    past_expected: pd.DataFrame, actuals: pd.DataFrame, min_points: int = 3
) -> pd.DataFrame:
    """Per (series_key, horizon): ratio = sum(actual) / sum(expected) over earlier origins and the
    RMSE of actual - ratio * expected, relative to expected. `past_expected` has columns
    origin, series_key, horizon, period_start, expected; `actuals` series_key, period_start,
    actual (known at the forecast's as-of)."""
    j = past_expected.merge(actuals, on=["series_key", "period_start"], how="inner")
    out = []
    for (key, h), g in j.groupby(["series_key", "horizon"]):
        e, a = g["expected"].to_numpy(float), g["actual"].to_numpy(float)
        if len(g) < min_points or e.sum() <= 0:
            continue
        ratio = a.sum() / e.sum()
        resid = a - ratio * e
        rel_sd = float(np.sqrt(np.mean(resid**2)) / max(e.mean(), 1e-9))
        out.append({"series_key": key, "horizon": h, "ratio": ratio, "rel_sd": rel_sd, "n": len(g)})
    return pd.DataFrame(out, columns=["series_key", "horizon", "ratio", "rel_sd", "n"])


def pipeline_forecast(expected: pd.DataFrame, calibration: pd.DataFrame) -> pd.DataFrame:
    """Calibrated pipeline forecast with empirical normal 80/95% intervals (clipped at 0); rows
    without a calibration are dropped (the statistical models cover them)."""
    f = expected.merge(calibration, on=["series_key", "horizon"], how="inner")
    point = f["expected"] * f["ratio"]
    sd = f["expected"] * f["rel_sd"]
    f = f.assign(
        model="pipeline",
        point=point,
        lo80=(point - Z80 * sd).clip(lower=0),
        hi80=point + Z80 * sd,
        lo95=(point - Z95 * sd).clip(lower=0),
        hi95=point + Z95 * sd,
    )
    return f[
        [
            "series_key",
            "horizon",
            "period_start",
            "model",
            "point",
            "lo80",
            "hi80",
            "lo95",
            "hi95",
            "expected",
            "ratio",
        ]
    ]


def open_pipeline(history: pd.DataFrame, as_of, freq: str, horizon: int) -> float:
    """Unweighted open pipeline (USD) with a recorded close date inside the next `horizon`
    periods (for the coverage ratio in the executive report)."""
    d = as_of_timestamp(as_of)
    st = state_as_of(history, d)
    op = st[~st["is_closed"]]
    start = period_start(d, freq)
    end = next_periods(start, horizon, freq)[-1]
    ps = period_starts(op["close_date"], freq)
    return float(op.loc[(ps >= start).to_numpy() & (ps < end).to_numpy(), "amount_usd"].sum())
