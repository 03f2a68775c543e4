"""Forecast error metrics. Inputs are array-likes of equal length; NaNs are never silently used.

Definitions (documented in docs/FORECASTS.md):
- WAPE  = sum|a - f| / sum|a|                      (accuracy = 1 - WAPE)
- MAPE  = mean(|a - f| / |a|) over a != 0
- sMAPE = mean(200 * |a - f| / (|a| + |f|)) in percent; a term with a = f = 0 counts as 0
- bias  = sum(f - a) / sum|a|                      (positive = over-forecast)
- MASE  = mean|a - f| / mean|y_t - y_{t-m}| over the training series (in-sample seasonal naive)
- coverage = share of actuals inside [lo, hi]
"""

from __future__ import annotations

import numpy as np


def _arr(x) -> np.ndarray:
    return np.asarray(x, dtype=float)


def wape(actual, forecast) -> float:
    a, f = _arr(actual), _arr(forecast)
    denom = np.abs(a).sum()
    if denom == 0:
        return float("nan")
    return float(np.abs(a - f).sum() / denom)


def mape(actual, forecast) -> float:
    a, f = _arr(actual), _arr(forecast)
    mask = a != 0
    if not mask.any():
        return float("nan")
    return float(np.mean(np.abs(a[mask] - f[mask]) / np.abs(a[mask])))


def smape(actual, forecast) -> float:
    a, f = _arr(actual), _arr(forecast)
    if a.size == 0:
        return float("nan")
    denom = np.abs(a) + np.abs(f)
    terms = np.where(denom == 0, 0.0, 200.0 * np.abs(a - f) / np.where(denom == 0, 1.0, denom))
    return float(np.mean(terms))


def bias(actual, forecast) -> float:
    a, f = _arr(actual), _arr(forecast)
    denom = np.abs(a).sum()
    if denom == 0:
        return float("nan")
    return float((f - a).sum() / denom)


def seasonal_naive_scale(train, m: int) -> float:
    """Mean absolute in-sample seasonal-naive error (lag m; lag 1 if the series is too short)."""
    y = _arr(train)
    lag = m if y.size > m else 1
    if y.size <= lag:
        return float("nan")
    return float(np.mean(np.abs(y[lag:] - y[:-lag])))


def mase(actual, forecast, scale: float) -> float:
    a, f = _arr(actual), _arr(forecast)
    if not scale or not np.isfinite(scale):
        return float("nan")
    return float(np.mean(np.abs(a - f)) / scale)


def coverage(actual, lo, hi) -> float:
    a, lo_, hi_ = _arr(actual), _arr(lo), _arr(hi)
    if a.size == 0:
        return float("nan")
    return float(np.mean((a >= lo_) & (a <= hi_)))
