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

import numpy as np
import pandas as pd

from forecasts.models import Z80, Z95
from forecasts.periods import as_of_timestamp, next_periods, period_start, period_starts
from forecasts.series import TOTAL, series_key, state_as_of
from sandbox.schema import STAGES

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


def expected_bookings(history: pd.DataFrame, as_of, freq: str, horizon: int) -> pd.DataFrame:
    """Raw pipeline expectation per (series_key, horizon) for the `horizon` periods starting at
    the period containing `as_of` (the period of D is horizon 1)."""
    d = as_of_timestamp(as_of)
    day0 = d.normalize()
    periods = next_periods(period_start(d, freq) - pd.Timedelta(days=1), horizon, freq)
    bounds = list(periods) + [next_periods(periods[-1], 1, freq)[0]]
    st = state_as_of(history, d)
    p_win = win_rates(history, d)
    hist = slippage_histogram(history, d)
    slips = np.arange(SLIP_MIN, SLIP_MAX + 1)

    open_ = st[~st["is_closed"]].copy()
    open_["w"] = open_["amount_usd"].clip(lower=0) * open_["stage_name"].map(p_win).astype(
        "float64"
    ).fillna(0.5)
    # distribution of close day per distinct recorded close date
    day_edges = np.array([(b - day0).days for b in bounds])
    rows = []
    grouped = open_.groupby(["close_date", "segment", "region"])["w"].sum().reset_index()
    for close_date, grp in grouped.groupby("close_date"):
        off = (close_date - day0).days + slips  # day offsets from D of each slip outcome
        mask = off >= 0
        if hist[mask].sum() > 0:
            probs = np.where(mask, hist, 0.0)
        else:  # stale close date beyond all learned slippage: slip forward from today
            probs = np.where(slips >= 0, hist, 0.0)
            off = slips.copy()
            if probs.sum() == 0:
                probs = np.zeros_like(hist)
                probs[-SLIP_MIN] = 1.0
        probs = probs / probs.sum()
        per_period = np.array(
            [probs[(off >= day_edges[i]) & (off < day_edges[i + 1])].sum() for i in range(horizon)]
        )
        for r in grp.itertuples(index=False):
            rows.append((r.segment, r.region, per_period * r.w))
    expected = {}
    won_future = st[st["is_won"] & (st["close_date"] >= day0)]
    for seg, reg, vec in rows + [
        (r.segment, r.region, _certain(r.close_date, r.amount_usd, periods, freq))
        for r in won_future.itertuples(index=False)
    ]:
        for key in (TOTAL, series_key(segment=seg), series_key(region=reg)):
            expected[key] = expected.get(key, np.zeros(horizon)) + vec
    out = [
        pd.DataFrame(
            {
                "series_key": k,
                "horizon": np.arange(1, horizon + 1),
                "period_start": periods,
                "expected": v,
            }
        )
        for k, v in expected.items()
    ]
    if not out:
        return pd.DataFrame(columns=["series_key", "horizon", "period_start", "expected"])
    return pd.concat(out, ignore_index=True)


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
