"""Statistical forecast models as pure functions on a regular series.

Every model takes `y` (a pandas Series indexed by period start, regular, no gaps), a horizon `h`
and the frequency ("W" or "M"), and returns a `Forecast` with point forecasts and 80%/95%
prediction intervals for the next `h` periods. Intervals are model-based:

- seasonal naive: normal intervals from the in-sample seasonal-naive residual RMSE, widened as
  sqrt(k + 1) with k the number of whole seasons inside the horizon (Hyndman & Athanasopoulos).
- ETS: statsmodels `ETSModel` (additive errors, analytic prediction variance), configuration
  chosen by AICc among a few trend/damping/seasonality variants.
- ARIMA: statsmodels `SARIMAX`, order chosen by AIC on a small grid. Monthly: seasonal ARIMA with
  one seasonal difference (s = 12) and a drift term. Weekly (s = 52 makes SARIMA's state far too
  large): ARIMA errors around a linear trend, yearly Fourier terms and quarter-end week dummies.

Forecasts of non-negative series (bookings) are clipped at 0, bounds included. Fitting is
deterministic (no simulation); statsmodels warnings are captured and logged at DEBUG.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from forecasts.periods import SEASONAL_PERIOD, check_freq, next_periods, quarter_end_dummies
from forecasts.threads import single_threaded_blas

log = logging.getLogger(__name__)

Z80 = 1.2815515655446004
Z95 = 1.959963984540054
MODEL_NAMES = ("snaive", "ets", "arima")

# (trend, damped, seasonal) variants tried by `ets`
ETS_CONFIGS: tuple[tuple[str | None, bool, str | None], ...] = (
    (None, False, None),
    ("add", False, None),
    ("add", True, None),
    (None, False, "add"),
    ("add", False, "add"),
    ("add", True, "add"),
)
# (p, d, q) x (P, D, Q) grids tried by `arima`
ARIMA_ORDERS: tuple[tuple[int, int, int], ...] = ((1, 0, 0), (0, 0, 1), (1, 0, 1), (2, 0, 0))
SARIMA_SEASONAL: tuple[tuple[int, int, int], ...] = ((0, 1, 1),)
FOURIER_K = 3


@dataclass(frozen=True)
class Forecast:
    """Point forecasts and 80%/95% intervals for the next h periods."""

    model: str
    index: pd.DatetimeIndex
    point: np.ndarray
    lo80: np.ndarray
    hi80: np.ndarray
    lo95: np.ndarray
    hi95: np.ndarray
    info: dict = field(default_factory=dict)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "period_start": self.index,
                "horizon": np.arange(1, len(self.index) + 1),
                "model": self.model,
                "point": self.point,
                "lo80": self.lo80,
                "hi80": self.hi80,
                "lo95": self.lo95,
                "hi95": self.hi95,
            }
        )


FIT_MODULES = (
    "statsmodels.tsa.exponential_smoothing.ets",
    "statsmodels.tsa.statespace.sarimax",
)
_preload_started = threading.Event()
_preload_thread: list[threading.Thread] = []


def _import_fit_modules() -> None:
    for name in FIT_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # the fit's own import raises the real error
            log.debug("background import of %s failed", name, exc_info=True)
            return


def preload() -> None:
    """Start importing statsmodels' ETS and SARIMAX (and scipy) in a background thread, once per
    process; returns at once. A run that will fit calls it before its inputs query and
    `wait_preload()` after: the ~1-2 s import of a fresh process then overlaps the DuckDB
    work (which releases the GIL). Results do not depend on which thread imported the
    modules."""
    if _preload_started.is_set() or all(name in sys.modules for name in FIT_MODULES):
        return
    _preload_started.set()
    thread = threading.Thread(
        target=_import_fit_modules, name="salesops-statsmodels-import", daemon=True
    )
    _preload_thread.append(thread)
    thread.start()


def wait_preload(timeout: float = 300.0) -> None:
    """Wait for `preload`'s import to finish (no-op when none runs): callers that import
    statsmodels themselves do it after, never beside it (two threads importing the same
    package can see one of its modules half initialized)."""
    for thread in _preload_thread:
        thread.join(timeout)


@contextlib.contextmanager
def quiet_statsmodels() -> Iterator[None]:
    """Capture warnings raised while fitting (convergence, start parameters, frequency) and log
    them at DEBUG instead of printing them; scoped, so global warning filters are untouched.
    Also runs BLAS single-threaded (see forecasts.threads)."""
    with warnings.catch_warnings(record=True) as caught, single_threaded_blas():
        warnings.simplefilter("always")
        yield
    for w in caught:
        log.debug("statsmodels: %s: %s", w.category.__name__, w.message)


def _validate(y: pd.Series, h: int, freq: str) -> np.ndarray:
    check_freq(freq)
    if h < 1:
        raise ValueError(f"horizon must be >= 1, got {h}")
    if not isinstance(y.index, pd.DatetimeIndex):
        raise TypeError("y must be indexed by period start dates (DatetimeIndex)")
    arr = np.asarray(y, dtype=float)
    if arr.size < 3:
        raise ValueError(f"series too short to forecast: {arr.size} periods (need >= 3)")
    if not np.isfinite(arr).all():
        bad = y.index[~np.isfinite(arr)][0]
        raise ValueError(f"series has a missing/non-finite value at {bad.date()}")
    return arr


def _finish(
    model: str,
    y: pd.Series,
    h: int,
    freq: str,
    point,
    lo80,
    hi80,
    lo95,
    hi95,
    info: dict,
) -> Forecast:
    arrs = [np.asarray(a, dtype=float) for a in (point, lo80, hi80, lo95, hi95)]
    if (np.asarray(y) >= 0).all():
        arrs = [np.clip(a, 0.0, None) for a in arrs]
    return Forecast(model, next_periods(y.index[-1], h, freq), *arrs, info=info)


def _normal_bands(point: np.ndarray, sd: np.ndarray):
    return point - Z80 * sd, point + Z80 * sd, point - Z95 * sd, point + Z95 * sd


def seasonal_naive(y: pd.Series, h: int, freq: str) -> Forecast:
    """Repeat the last observed season (plain naive when the series is shorter than 2 seasons)."""
    arr = _validate(y, h, freq)
    m = SEASONAL_PERIOD[freq]
    lag = m if arr.size >= m + 2 else 1
    steps = np.arange(h)
    point = arr[arr.size - lag + (steps % lag)]
    resid = arr[lag:] - arr[:-lag]
    sigma = float(np.sqrt(np.mean(resid**2))) if resid.size else 0.0
    k = np.floor(steps / lag)  # whole seasons (or steps, for lag 1) before step h
    sd = sigma * np.sqrt(k + 1)
    name = "snaive" if lag == m else "naive"
    return _finish("snaive", y, h, freq, point, *_normal_bands(point, sd), {"variant": name})


def ets(
    y: pd.Series,
    h: int,
    freq: str,
    configs: tuple[tuple[str | None, bool, str | None], ...] = ETS_CONFIGS,
) -> Forecast:
    """Additive-error ETS; the configuration with the lowest AICc wins."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    arr = _validate(y, h, freq)
    m = SEASONAL_PERIOD[freq]
    best = None
    tried = 0
    for trend, damped, seasonal in configs:
        if seasonal and arr.size < 2 * m + 2:
            continue
        if trend is None and damped:
            continue
        init = "heuristic" if seasonal and m > 24 else "estimated"
        if init == "estimated" and arr.size < (m if seasonal else 0) + 10:
            continue
        try:
            with quiet_statsmodels():
                mod = ETSModel(
                    pd.Series(arr),  # RangeIndex: ETSModel's prediction needs a pandas endog
                    error="add",
                    trend=trend,
                    damped_trend=damped,
                    seasonal=seasonal,
                    seasonal_periods=m if seasonal else None,
                    initialization_method=init,
                )
                res = mod.fit(disp=False, maxiter=200)
            score = res.aicc if np.isfinite(res.aicc) else res.aic
        except (ValueError, np.linalg.LinAlgError) as exc:
            log.debug("ETS %s/%s/%s failed: %s", trend, damped, seasonal, exc)
            continue
        tried += 1
        if not np.isfinite(score):
            continue
        if best is None or score < best[0] - 1e-9:
            best = (score, (trend, damped, seasonal), res)
    if best is None:
        log.debug("no ETS configuration could be fitted; falling back to seasonal naive")
        fc = seasonal_naive(y, h, freq)
        return Forecast(
            "ets", fc.index, fc.point, fc.lo80, fc.hi80, fc.lo95, fc.hi95, {"fallback": "snaive"}
        )
    score, cfg, res = best
    with quiet_statsmodels():
        pred = res.get_prediction(start=arr.size, end=arr.size + h - 1)
        f80 = pred.summary_frame(alpha=0.2).to_numpy()
        f95 = pred.summary_frame(alpha=0.05)
    cols = list(f95.columns)
    f95 = f95.to_numpy()
    info = {
        "trend": cfg[0],
        "damped": cfg[1],
        "seasonal": cfg[2],
        "aicc": float(score),
        "configs_fitted": tried,
    }
    return _finish(
        "ets",
        y,
        h,
        freq,
        f80[:, cols.index("mean")],
        f80[:, cols.index("pi_lower")],
        f80[:, cols.index("pi_upper")],
        f95[:, cols.index("pi_lower")],
        f95[:, cols.index("pi_upper")],
        info,
    )


def _weekly_exog(index: pd.DatetimeIndex, t0: int, k: int = FOURIER_K) -> np.ndarray:
    """Linear trend, K yearly Fourier pairs and quarter-end week dummies for weekly periods."""
    t = np.arange(t0, t0 + len(index), dtype=float)
    # day-of-year based so the terms follow the calendar, not the position
    doy = np.asarray(index.day_of_year, dtype=float) + 3.0  # mid-week
    year_len = np.where(index.is_leap_year, 366.0, 365.0)
    cols = [np.ones_like(t), t / 52.0]  # constant as a regressor: much faster than trend="c"
    for j in range(1, k + 1):
        ang = 2 * math.pi * j * doy / year_len
        cols += [np.sin(ang), np.cos(ang)]
    cols.append(quarter_end_dummies(index, "W"))
    return np.column_stack(cols)


def arima(
    y: pd.Series,
    h: int,
    freq: str,
    orders: tuple[tuple[int, int, int], ...] = ARIMA_ORDERS,
    seasonal_orders: tuple[tuple[int, int, int], ...] = SARIMA_SEASONAL,
) -> Forecast:
    """(S)ARIMA with the lowest AIC over a small order grid (see module docstring)."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    arr = _validate(y, h, freq)
    m = SEASONAL_PERIOD[freq]
    fut_index = next_periods(y.index[-1], h, freq)
    candidates: list[dict] = []
    if freq == "M" and arr.size >= 2 * m + 4:
        for order in orders:
            for P, D, Q in seasonal_orders:
                candidates.append(
                    {
                        "order": order,
                        "seasonal_order": (P, D, Q, m),
                        "trend": "c",
                        "exog": None,
                        "fexog": None,
                    }
                )
    elif freq == "W" and arr.size >= m + 12:
        ex = _weekly_exog(y.index, 0)
        fex = _weekly_exog(fut_index, arr.size)
        for order in orders:
            candidates.append(
                {
                    "order": order,
                    "seasonal_order": (0, 0, 0, 0),
                    "trend": None,
                    "exog": ex,
                    "fexog": fex,
                }
            )
    if not candidates:  # short series: non-seasonal with drift
        for order in ((1, 1, 0), (0, 1, 1)):
            candidates.append(
                {
                    "order": order,
                    "seasonal_order": (0, 0, 0, 0),
                    "trend": "t",
                    "exog": None,
                    "fexog": None,
                }
            )
    # scale for numerical stability (bookings are in the millions)
    scale = float(np.std(arr)) or 1.0
    ys = arr / scale
    best = None
    for cand in candidates:
        try:
            with quiet_statsmodels():
                mod = SARIMAX(
                    ys,
                    exog=cand["exog"],
                    order=cand["order"],
                    seasonal_order=cand["seasonal_order"],
                    trend=cand["trend"],
                    enforce_stationarity=True,
                    enforce_invertibility=True,
                )
                res = mod.fit(disp=False, maxiter=50)
        except (ValueError, np.linalg.LinAlgError) as exc:
            log.debug("SARIMAX %s failed: %s", cand["order"], exc)
            continue
        if not np.isfinite(res.aic):
            continue
        if best is None or res.aic < best[0] - 1e-9:
            best = (float(res.aic), cand, res)
    if best is None:
        fc = seasonal_naive(y, h, freq)
        return Forecast(
            "arima", fc.index, fc.point, fc.lo80, fc.hi80, fc.lo95, fc.hi95, {"fallback": "snaive"}
        )
    aic, cand, res = best
    with quiet_statsmodels():
        fc = res.get_forecast(steps=h, exog=cand["fexog"])
        mean = np.asarray(fc.predicted_mean) * scale
        c80 = np.asarray(fc.conf_int(alpha=0.2)) * scale
        c95 = np.asarray(fc.conf_int(alpha=0.05)) * scale
    info = {
        "order": cand["order"],
        "seasonal_order": cand["seasonal_order"],
        "fourier_k": FOURIER_K if cand["exog"] is not None else 0,
        "aic": aic,
    }
    return _finish("arima", y, h, freq, mean, c80[:, 0], c80[:, 1], c95[:, 0], c95[:, 1], info)


MODELS = {"snaive": seasonal_naive, "ets": ets, "arima": arima}


def fit_forecast(model: str, y: pd.Series, h: int, freq: str, **options) -> Forecast:
    """Dispatch by model name ("snaive", "ets", "arima")."""
    try:
        fn = MODELS[model]
    except KeyError:
        raise ValueError(f"unknown model {model!r}; choose from {sorted(MODELS)}") from None
    return fn(y, h, freq, **options)


def to_series(values, start, freq: str) -> pd.Series:
    """Helper: a regular series of `values` starting at the period containing `start`."""
    from forecasts.periods import period_range

    vals = np.asarray(values, dtype=float)
    return pd.Series(vals, index=period_range(start, len(vals), freq))
