"""Rolling-origin backtest (expanding window, refit at every origin).

With a series of n periods, horizon H and N origins, the origins are the last N training ends
one period apart such that every origin has all H targets observed: training windows end at
periods n-H-N+1 ... n-H (1-based), and each origin forecasts the next H periods.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasts import metrics
from forecasts.models import MODEL_NAMES, Forecast, fit_forecast
from forecasts.periods import SEASONAL_PERIOD, check_freq
from forecasts.threads import single_threaded_blas

log = logging.getLogger(__name__)

MIN_TRAIN = 8
RECORD_COLUMNS = [
    "origin",
    "model",
    "horizon",
    "period_start",
    "actual",
    "point",
    "lo80",
    "hi80",
    "lo95",
    "hi95",
    "scale",
]


@dataclass(frozen=True)
class BacktestResult:
    records: pd.DataFrame  # one row per origin x model x horizon
    summary: pd.DataFrame  # one row per model
    chosen: str  # the model with the lowest MASE

    def to_dict(self) -> dict:
        recs = self.records.copy()
        for col in ("origin", "period_start"):
            recs[col] = recs[col].dt.strftime("%Y-%m-%d")
        return {
            "chosen": self.chosen,
            "summary": _records_json(self.summary),
            "origins": _origins_json(recs),
        }


def _records_json(df: pd.DataFrame) -> list[dict]:
    out = []
    for row in df.to_dict(orient="records"):
        out.append(
            {
                k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                for k, v in row.items()
            }
        )
    return out


def _origins_json(recs: pd.DataFrame) -> list[dict]:
    out = []
    for origin, grp in recs.groupby("origin", sort=True):
        models = {}
        for model, g in grp.groupby("model", sort=False):
            g = g.sort_values("horizon")
            models[model] = {
                k: [float(x) for x in g[k]] for k in ("point", "lo80", "hi80", "lo95", "hi95")
            } | {"period_start": list(g["period_start"]), "actual": [float(x) for x in g["actual"]]}
        out.append({"origin": origin, "models": models})
    return out


def origin_ends(n: int, horizon: int, origins: int, min_train: int = MIN_TRAIN) -> list[int]:
    """Training lengths (number of periods) for each origin, oldest first."""
    if horizon < 1 or origins < 1:
        raise ValueError("horizon and origins must be >= 1")
    first = n - horizon - origins + 1
    if first < min_train:
        raise ValueError(
            f"series too short for this backtest: {n} periods, but horizon {horizon} and "
            f"{origins} origins need at least {min_train + horizon + origins - 1} "
            f"({min_train} to train the first origin); use fewer origins or a shorter horizon"
        )
    return list(range(first, n - horizon + 1))


def rolling_origin(
    y: pd.Series,
    freq: str,
    horizon: int,
    origins: int,
    models: Sequence[str] = MODEL_NAMES,
    fitter: Callable[[str, pd.Series, int, str], Forecast] = fit_forecast,
    min_train: int = MIN_TRAIN,
) -> BacktestResult:
    """Backtest `models` on `y`; returns per-forecast records, per-model summary and the pick."""
    check_freq(freq)
    m = SEASONAL_PERIOD[freq]
    ends = origin_ends(len(y), horizon, origins, min_train)
    rows = []
    t0 = time.monotonic()
    for i, end in enumerate(ends, start=1):
        with single_threaded_blas():
            rows.extend(_one_origin(y, end, horizon, freq, m, models, fitter))
        log.info(
            "backtest origin %d/%d (train %d periods) done in %.1fs",
            i,
            len(ends),
            end,
            time.monotonic() - t0,
        )
    records = pd.concat(rows, ignore_index=True)[RECORD_COLUMNS]
    summary = summarize(records)
    return BacktestResult(records, summary, pick(summary, models))


def _one_origin(y, end, horizon, freq, m, models, fitter) -> list[pd.DataFrame]:
    rows = []
    train, test = y.iloc[:end], y.iloc[end : end + horizon]
    scale = metrics.seasonal_naive_scale(train.to_numpy(), m)
    for model in models:
        fr = fitter(model, train, horizon, freq).frame()
        fr["origin"] = train.index[-1]
        fr["actual"] = test.to_numpy()
        fr["scale"] = scale
        fr["model"] = model
        rows.append(fr)
    return rows


def summarize(records: pd.DataFrame, by: Sequence[str] = ("model",)) -> pd.DataFrame:
    """MASE, sMAPE, WAPE, bias and 80/95% coverage per group of backtest records."""
    out = []
    for key, g in records.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        a, f = g["actual"].to_numpy(), g["point"].to_numpy()
        err = np.abs(a - f) / g["scale"].to_numpy()
        out.append(
            dict(zip(by, key, strict=True))
            | {
                "n": int(len(g)),
                "mase": float(np.mean(err)) if np.isfinite(err).all() else float("nan"),
                "smape": metrics.smape(a, f),
                "wape": metrics.wape(a, f),
                "bias": metrics.bias(a, f),
                "coverage80": metrics.coverage(a, g["lo80"], g["hi80"]),
                "coverage95": metrics.coverage(a, g["lo95"], g["hi95"]),
            }
        )
    return pd.DataFrame(out)


def pick(summary: pd.DataFrame, order: Sequence[str], metric: str = "mase") -> str:
    """Lowest `metric` wins (ties go to the simpler model, earlier in `order`); falls back to
    WAPE when the metric is undefined."""
    s = summary.set_index("model")
    col = metric if s[metric].notna().any() else "wape"
    best, best_v = None, float("inf")
    for model in order:
        if model in s.index:
            v = s.at[model, col]
            if np.isfinite(v) and v < best_v - 1e-12:
                best, best_v = model, v
    return best if best is not None else order[0]
