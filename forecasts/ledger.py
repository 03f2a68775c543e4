"""The forecast ledger: every published forecast, scored once its actuals are in.

Scores (per group, default per cadence and horizon) over ledger rows whose target period has
an actual: WAPE, MAPE, bias, 80/95% interval coverage and forecast accuracy
= max(0, 1 - WAPE), compared with the 92% target.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from forecasts import metrics

ACCURACY_TARGET = 0.92
LEDGER_COLUMNS = [
    "as_of",
    "cadence",
    "period_start",
    "period_end",
    "horizon",
    "series_key",
    "model",
    "point",
    "lo80",
    "hi80",
    "lo95",
    "hi95",
    "run_id",
    "published_at",
]
SCORE_COLUMNS = [
    "n",
    "actual",
    "forecast",
    "wape",
    "mape",
    "bias",
    "coverage80",
    "coverage95",
    "accuracy",
    "target",
    "meets_target",
]


def ledger_rows(forecast: pd.DataFrame, run_id: str, published_at) -> pd.DataFrame:
    """Ledger rows for a published forecast table (engine output)."""
    out = forecast.assign(run_id=run_id, published_at=pd.Timestamp(published_at))
    for col in ("as_of", "period_start", "period_end"):
        out[col] = pd.to_datetime(out[col]).dt.date
    return out[LEDGER_COLUMNS].reset_index(drop=True)


def score_ledger(
    ledger_df: pd.DataFrame,
    actuals_df: pd.DataFrame,
    by: Sequence[str] = ("cadence", "horizon"),
    target: float = ACCURACY_TARGET,
) -> pd.DataFrame:
    """Score ledger rows against actuals.

    `actuals_df` has series_key, period_start, period_end, actual (and optionally cadence);
    rows join on those keys, so weekly and monthly periods never mix. Ledger rows without an
    actual yet are not scored. Returns one row per group with n, actual and forecast sums,
    wape, mape, bias, coverage80, coverage95, accuracy (1 - wape), target and meets_target."""
    keys = ["series_key", "period_start", "period_end"]
    if "cadence" in actuals_df.columns:
        keys.append("cadence")
    led = ledger_df.copy()
    act = actuals_df[[*keys, "actual"]].copy()
    for frame in (led, act):
        for col in ("period_start", "period_end"):
            frame[col] = pd.to_datetime(frame[col])
    j = led.merge(act, on=keys, how="inner")
    rows = []
    for key, g in j.groupby(list(by), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        a, f = g["actual"].to_numpy(float), g["point"].to_numpy(float)
        w = metrics.wape(a, f)
        rows.append(
            dict(zip(by, key, strict=True))
            | {
                "n": int(len(g)),
                "actual": float(a.sum()),
                "forecast": float(f.sum()),
                "wape": w,
                "mape": metrics.mape(a, f),
                "bias": metrics.bias(a, f),
                "coverage80": metrics.coverage(a, g["lo80"], g["hi80"]),
                "coverage95": metrics.coverage(a, g["lo95"], g["hi95"]),
                "accuracy": max(0.0, 1.0 - w) if np.isfinite(w) else np.nan,
                "target": target,
                "meets_target": bool(np.isfinite(w) and 1.0 - w >= target),
            }
        )
    return pd.DataFrame(rows, columns=[*by, *SCORE_COLUMNS])
