"""Forecast as of D: candidates, rolling-origin selection, reconciliation.

`forecast_as_of(history, as_of, cadence)` only ever looks at what was known at `as_of`:
the bookings series come from opportunity states at D (`series.bookings_as_of`), the pipeline
from open opportunities at D. Its backtest calls the same candidate code at earlier origins
D-1 .. D-B periods and scores them against actuals known at D, then picks per series and horizon
band the candidate with the lowest WAPE. The published table is the picked forecasts, reconciled
proportionally so segments and regions each sum to the total.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from forecasts import metrics
from forecasts.fitcache import FitCache, spec_hash
from forecasts.fitpool import FitTask, PoolStats, run_fits
from forecasts.inputs import OriginInputs, frame_inputs
from forecasts.models import (
    ARIMA_ORDERS,
    ETS_CONFIGS,
    SARIMA_SEASONAL,
    arima,
    ets,
    seasonal_naive,
)
from forecasts.periods import (
    CADENCE_FREQ,
    as_of_timestamp,
    next_periods,
    period_end,
    period_start,
)
from forecasts.pipeline import calibrate, expected_from_inputs, pipeline_forecast
from forecasts.series import (
    TOTAL,
    actuals_table,
    build_series,
    parse_key,
    reconcile,
)
from forecasts.threads import single_threaded_blas
from sandbox.schema import REGIONS, SEGMENTS

log = logging.getLogger(__name__)

CANDIDATES = ("snaive", "ets", "arima", "pipeline", "combo")
VALUE_COLS = ["point", "lo80", "hi80", "lo95", "hi95"]
MIN_TRAIN_PERIODS = 8


@dataclass(frozen=True)
class EngineConfig:
    cadence: str
    horizon: int
    pipeline_horizon: int
    backtest_origins: int
    calibration_origins: int
    bands: tuple[tuple[int, int], ...]
    ets_configs: tuple = ETS_CONFIGS
    arima_orders: tuple = ARIMA_ORDERS
    seasonal_orders: tuple = SARIMA_SEASONAL
    segments: tuple[str, ...] = tuple(SEGMENTS)
    regions: tuple[str, ...] = tuple(REGIONS)
    history_start: str | None = None  # first period of the series (default: first booking)
    extra: dict = field(default_factory=dict)

    @property
    def freq(self) -> str:
        return CADENCE_FREQ[self.cadence]

    def band(self, h: int) -> tuple[int, int]:
        for lo, hi in self.bands:
            if lo <= h <= hi:
                return (lo, hi)
        return self.bands[-1]


# Model grids per cadence. Pruned (2026-11) to the variants the information criterion ever
# picked over every series and origin of the medium simulator org and the synthetic history
# (weekly: 126 ETS and 126 ARIMA selections, monthly: 98 + 98): a variant that never wins the
# AICc/AIC comparison only costs fit time, and dropping it leaves every forecast unchanged.
# Weekly ETS: the seasonal variants (+ damped non-seasonal for histories shorter than two years,
# where seasonal ETS cannot run); weekly ARIMA: MA(1) errors never won. Monthly ETS: seasonal
# variants never won (and cost 3-4x the others). See docs/FORECASTS.md, "Runtime".
WEEKLY_ETS = (
    ("add", True, None),
    (None, False, "add"),
    ("add", False, "add"),
    ("add", True, "add"),
)
WEEKLY_ARIMA = ((1, 0, 0), (1, 0, 1), (2, 0, 0))
MONTHLY_ETS = ((None, False, None), ("add", False, None), ("add", True, None))

CONFIGS: dict[str, EngineConfig] = {
    "weekly": EngineConfig(
        "weekly",
        horizon=13,
        pipeline_horizon=13,
        backtest_origins=8,
        calibration_origins=8,
        bands=((1, 4), (5, 8), (9, 13)),
        ets_configs=WEEKLY_ETS,
        arima_orders=WEEKLY_ARIMA,
    ),
    "monthly": EngineConfig(
        "monthly",
        horizon=6,
        pipeline_horizon=3,
        backtest_origins=6,
        calibration_origins=8,
        bands=((1, 1), (2, 3), (4, 6)),
        ets_configs=MONTHLY_ETS,
    ),
}


# SALESOPS_FORECAST_PROFILE=fast: smaller grids and fewer backtest origins (demo, CI, laptops);
# roughly 4x faster, same code path.
FAST = {
    "backtest_origins": 3,
    "calibration_origins": 6,
    "ets_configs": (("add", True, None), (None, False, "add"), ("add", True, "add")),
    "arima_orders": ((1, 0, 0), (0, 0, 1)),
}
PROFILES = {"full": {}, "fast": FAST}


def get_config(cadence: str, **overrides) -> EngineConfig:
    """The cadence's configuration, with the SALESOPS_FORECAST_PROFILE profile ("full", the
    default, or "fast") and then `overrides` applied."""
    if cadence not in CONFIGS:
        raise ValueError(f"cadence must be one of {sorted(CONFIGS)}, got {cadence!r}")
    profile = os.environ.get("SALESOPS_FORECAST_PROFILE", "full")
    if profile not in PROFILES:
        raise ValueError(
            f"SALESOPS_FORECAST_PROFILE must be one of {sorted(PROFILES)}, got {profile!r}"
        )
    return replace(CONFIGS[cadence], **(PROFILES[profile] | overrides))


@dataclass
class ForecastRun:
    as_of: pd.Timestamp
    cadence: str
    forecast: pd.DataFrame  # published, reconciled
    candidates: pd.DataFrame  # every candidate at as_of
    backtest: pd.DataFrame  # candidate records at earlier origins with actuals
    selection: pd.DataFrame  # series_key, band, model, wape
    history_series: dict[str, pd.Series]
    timings: dict[str, float]
    fitted: list[tuple] = field(default_factory=list)  # (origin, series_key, model) fitted

    def accuracy(self) -> pd.DataFrame:
        """Backtest accuracy max(0, 1 - WAPE) of the selected forecasts per series and horizon."""
        if self.backtest.empty:
            return pd.DataFrame(columns=["series_key", "horizon", "wape", "accuracy", "n"])
        sel = self.backtest.merge(
            self.selection[["series_key", "band_lo", "band_hi", "model"]],
            on=["series_key", "model"],
        )
        sel = sel[(sel["horizon"] >= sel["band_lo"]) & (sel["horizon"] <= sel["band_hi"])]
        rows = []
        for (k, h), g in sel.groupby(["series_key", "horizon"]):
            w = metrics.wape(g["actual"], g["point"])
            rows.append(
                {"series_key": k, "horizon": int(h), "wape": w, "accuracy": 1 - w, "n": len(g)}
            )
        return pd.DataFrame(rows)


class _Cache:
    """Per-run memo of pipeline expectations by origin (several origins share them)."""

    def __init__(self, inputs: dict[pd.Timestamp, OriginInputs], cfg: EngineConfig):
        self.inputs, self.cfg, self.expected, self.by_h = inputs, cfg, {}, {}
        self._actuals: dict[pd.Timestamp, pd.DataFrame] = {}
        self._series: dict[pd.Timestamp, dict[str, pd.Series]] = {}

    def series(self, origin: pd.Timestamp) -> dict[str, pd.Series]:
        """The bookings series known at `origin` (built once per run; callers do not mutate)."""
        if origin not in self._series:
            cfg = self.cfg
            self._series[origin] = build_series(
                self.inputs[origin].bookings,
                cfg.freq,
                origin,
                start=cfg.history_start,
                segments=list(cfg.segments),
                regions=list(cfg.regions),
            )
        return self._series[origin]

    def actuals(self, origin: pd.Timestamp) -> pd.DataFrame:
        """`actuals_table` of the bookings known at `origin` (computed once per run)."""
        if origin not in self._actuals:
            self._actuals[origin] = actuals_table(
                self.inputs[origin].bookings, self.cfg.freq, origin
            )
        return self._actuals[origin]

    def expected_h(self, origin: pd.Timestamp, h: int) -> pd.DataFrame:
        """Rows of `expected_at(origin)` at horizon h (split once per origin)."""
        if origin not in self.by_h:
            e = self.expected_at(origin)
            self.by_h[origin] = {int(k): g for k, g in e.groupby("horizon", sort=False)}
        e = self.by_h[origin].get(h)
        return e if e is not None else self.expected_at(origin).iloc[0:0]

    def expected_at(self, origin: pd.Timestamp) -> pd.DataFrame:
        if origin not in self.expected:
            self.expected[origin] = expected_from_inputs(
                self.inputs[origin], self.cfg.freq, self.cfg.pipeline_horizon
            ).assign(origin=origin)
        return self.expected[origin]


def _shift(origin: pd.Timestamp, k: int, freq: str) -> pd.Timestamp:
    """Period start k periods before (k>0) the period containing `origin`."""
    p = period_start(origin, freq)
    if freq == "W":
        return p - pd.Timedelta(weeks=k)
    return (p - pd.DateOffset(months=k)).normalize()


def forecast_origins(as_of, cfg: EngineConfig) -> list[pd.Timestamp]:
    """Every origin whose inputs a forecast as of `as_of` reads: the as-of itself, the backtest
    origins and, for each of those, the pipeline calibration origins."""
    d = as_of_timestamp(as_of)
    fc_origins = [d] + [_shift(d, k, cfg.freq) for k in range(1, cfg.backtest_origins + 1)]
    out = set(fc_origins)
    if cfg.pipeline_horizon > 0:
        for o in fc_origins:
            for h in range(1, cfg.pipeline_horizon + 1):
                for k in range(h, h + cfg.calibration_origins):
                    out.add(_shift(o, k, cfg.freq))
    return sorted(out)


def _grid(model: str, cfg: EngineConfig):
    return cfg.ets_configs if model == "ets" else (cfg.arima_orders, cfg.seasonal_orders)


STAT_MODELS = ("ets", "arima")  # the fitted (statsmodels) candidates, in fitting order


def _specs(cfg: EngineConfig) -> dict[str, str]:
    return {m: spec_hash(m, cfg.cadence, cfg.horizon, _grid(m, cfg)) for m in STAT_MODELS}


def fit_origins(as_of, cfg: EngineConfig) -> list[pd.Timestamp]:
    """The origins a forecast as of `as_of` fits models at: the as-of, then the backtest
    origins one period apart going back."""
    d = as_of_timestamp(as_of)
    return [d] + [_shift(d, k, cfg.freq) for k in range(1, cfg.backtest_origins + 1)]


def fit_plan(
    inputs: dict[pd.Timestamp, OriginInputs],
    as_of,
    cfg: EngineConfig,
    cache: _Cache | None = None,
) -> list[tuple[pd.Timestamp, str, str, pd.Series]]:
    """(origin, series_key, model, training series) of every statistical fit a forecast as of
    `as_of` asks for, in the order `candidate_forecasts` asks (before any fit cache): at a
    backtest origin, the series up to the first one too short to forecast; nothing when a
    series is too short at the as-of (the forecast fails)."""
    cache = cache or _Cache(inputs, cfg)
    plan = []
    for i, o in enumerate(fit_origins(as_of, cfg)):
        for key, y in cache.series(o).items():
            if len(y) < MIN_TRAIN_PERIODS:
                if i == 0:
                    return []  # the forecast itself fails: fit nothing ahead
                break  # candidate_forecasts skips this backtest origin from here on
            plan.extend((o, key, m, y) for m in STAT_MODELS)
    return plan


def prefit(
    inputs: dict[pd.Timestamp, OriginInputs],
    as_of,
    cfg: EngineConfig,
    cache: _Cache,
    fits: FitCache,
    workers: int | None = None,
) -> PoolStats:
    """Fit ahead, side by side in `workers` processes (`forecasts.fitpool`), every fit of the
    `fit_plan` the fit cache does not hold; `candidate_forecasts` then finds them in `fits`
    (counted as fitted, not reused). Bit-identical to fitting one by one on demand."""
    specs = _specs(cfg)
    keys, tasks, entries = [], [], []
    for o, key, model, y in fit_plan(inputs, as_of, cfg, cache):
        k = fits.key(cfg.cadence, key, model, specs[model], o, y)
        if fits.get(k, cfg.horizon) is not None or k in keys:
            continue
        keys.append(k)
        entries.append((o, key, model))
        tasks.append(FitTask(model, y, cfg.horizon, cfg.freq, _grid(model, cfg)))
    values, stats = run_fits(tasks, workers)
    for k, v, e in zip(keys, values, entries, strict=True):
        fits.put_prefitted(k, v, e)
    return stats


def candidate_forecasts(
    inputs: dict[pd.Timestamp, OriginInputs],
    as_of,
    cfg: EngineConfig,
    cache: _Cache | None = None,
    fits: FitCache | None = None,
) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """Every candidate model's forecast for the `cfg.horizon` periods from the period of
    `as_of`, using only data known at `as_of` (`inputs` from `forecast_origins`)."""
    d = as_of_timestamp(as_of)
    freq, H = cfg.freq, cfg.horizon
    cache = cache or _Cache(inputs, cfg)
    fits = fits if fits is not None else FitCache()
    series = cache.series(d)
    specs = _specs(cfg)
    frames = []
    for key, y in series.items():
        if len(y) < MIN_TRAIN_PERIODS:
            raise ValueError(
                f"only {len(y)} {cfg.cadence} periods of bookings known at {d.date()} for "
                f"{key}; need at least {MIN_TRAIN_PERIODS} to forecast"
            )
        fitters = {
            "ets": lambda y=y: ets(y, H, freq, configs=cfg.ets_configs),
            "arima": lambda y=y: arima(
                y, H, freq, orders=cfg.arima_orders, seasonal_orders=cfg.seasonal_orders
            ),
        }
        out = [seasonal_naive(y, H, freq)]
        for model, fit in fitters.items():
            out.append(fits.forecast(cfg.cadence, key, model, specs[model], d, y, H, freq, fit))
        for fc in out:
            frames.append(fc.frame().assign(series_key=key))
    stat = pd.concat(frames, ignore_index=True)
    # pipeline: expectation at D, calibrated at earlier origins whose targets are complete at D
    pipe = pd.DataFrame()
    if cfg.pipeline_horizon > 0:
        exp_now = cache.expected_at(d)
        past = []
        for h in range(1, cfg.pipeline_horizon + 1):
            for k in range(h, h + cfg.calibration_origins):
                past.append(cache.expected_h(_shift(d, k, freq), h))
        actual = cache.actuals(d)
        cal = calibrate(pd.concat(past, ignore_index=True), actual)
        pipe = pipeline_forecast(exp_now, cal)
        pipe = pipe.drop(columns=["expected", "ratio"])
    # combo: mean of ets, arima and (where available) pipeline, bounds averaged likewise
    parts = pd.concat([stat[stat["model"].isin(["ets", "arima"])], pipe], ignore_index=True)
    combo = (
        parts.groupby(["series_key", "horizon", "period_start"], as_index=False)[VALUE_COLS]
        .mean()
        .assign(model="combo")
    )
    out = pd.concat([stat, pipe, combo], ignore_index=True)
    out["period_start"] = pd.to_datetime(out["period_start"])
    return out[["series_key", "horizon", "period_start", "model", *VALUE_COLS]], series


def select_models(backtest: pd.DataFrame, cfg: EngineConfig, keys) -> pd.DataFrame:
    """Per series and horizon band, the candidate with the lowest backtest WAPE (ties and
    unscored bands go to the simpler model / the previous band's pick; default "ets")."""
    rows = []
    # split once (groups keep the backtest's row order: the same WAPE sums as boolean filters)
    by_key = {k: g for k, g in backtest.groupby("series_key", sort=False)}
    empty = backtest.iloc[0:0]
    for key in keys:
        prev = "ets"
        kg = by_key.get(key, empty)
        for lo, hi in cfg.bands:
            g = kg[kg["horizon"].between(lo, hi)]
            by_model = {m: gm for m, gm in g.groupby("model", sort=False)}
            n_snaive = len(by_model.get("snaive", empty))
            best, best_w = prev, float("inf")
            scores = {}
            for model in CANDIDATES:
                gm = by_model.get(model, empty)
                # a model must cover every scored (origin, horizon) of the band to compete
                if gm.empty or len(gm) < n_snaive:
                    continue
                w = metrics.wape(gm["actual"], gm["point"])
                scores[model] = w
                if np.isfinite(w) and w < best_w - 1e-12:
                    best, best_w = model, w
            rows.append(
                {
                    "series_key": key,
                    "band_lo": lo,
                    "band_hi": hi,
                    "model": best,
                    "wape": best_w if np.isfinite(best_w) else np.nan,
                    "n": int(len(by_model.get(best, empty))),
                    "scores": scores,
                }
            )
            prev = best
    return pd.DataFrame(rows)


def forecast_as_of(
    history: pd.DataFrame | None,
    as_of,
    cadence: str,
    config: EngineConfig | None = None,
    inputs: dict[pd.Timestamp, OriginInputs] | None = None,
    fits: FitCache | None = None,
    workers: int | None = None,
    ahead: bool = True,
) -> ForecastRun:
    """Publishable forecast at `as_of` (see module docstring), from an opportunity history
    DataFrame (aggregated in an in-memory DuckDB) or from `inputs` already aggregated at
    `forecast_origins(as_of, cfg)` (`inputs.origin_inputs` on the warehouse). `fits` is the fit
    cache (`forecasts.fitcache`); statistical fits found there are reused, not refitted. The
    missing fits are done ahead, in `workers` processes (`prefit`; default
    `fitpool.default_workers()`); `ahead=False` fits each one when it is needed instead (the
    serial reference: same results)."""
    cfg = config or get_config(cadence)
    if inputs is None:
        if history is None:
            raise ValueError("pass an opportunity history or precomputed inputs")
        inputs = frame_inputs(history, forecast_origins(as_of, cfg))
    with single_threaded_blas():
        return _forecast_as_of(
            inputs, as_of, cfg, fits if fits is not None else FitCache(), workers, ahead
        )


def _forecast_as_of(
    inputs: dict[pd.Timestamp, OriginInputs],
    as_of,
    cfg: EngineConfig,
    fits: FitCache,
    workers: int | None,
    ahead: bool,
) -> ForecastRun:
    d = as_of_timestamp(as_of)
    freq = cfg.freq
    cache = _Cache(inputs, cfg)
    t0 = time.monotonic()
    pool = prefit(inputs, d, cfg, cache, fits, workers) if ahead else PoolStats()
    cands, series = candidate_forecasts(inputs, d, cfg, cache, fits)
    t_fit = time.monotonic() - t0
    # rolling-origin backtest: same code at earlier origins, actuals as known at D
    actual = cache.actuals(d)
    recs = []
    for k in range(1, cfg.backtest_origins + 1):
        origin = _shift(d, k, freq)
        try:
            c, _ = candidate_forecasts(inputs, origin, cfg, cache, fits)
        except ValueError as exc:
            log.info("backtest origin %s skipped: %s", origin.date(), exc)
            continue
        c = c.merge(actual, on=["series_key", "period_start"], how="inner").assign(origin=origin)
        recs.append(c)
        log.info(
            "%s backtest origin %d/%d (%s) done, %.1fs",
            cfg.cadence,
            k,
            cfg.backtest_origins,
            origin.date(),
            time.monotonic() - t0,
        )
    backtest = (
        pd.concat(recs, ignore_index=True)
        if recs
        else pd.DataFrame(columns=[*cands.columns, "actual", "origin"])
    )
    t_bt = time.monotonic() - t0 - t_fit
    selection = select_models(backtest, cfg, list(series))
    picked = _apply_selection(cands, selection, cfg)
    shares = _shares(series)
    published = reconcile(picked, VALUE_COLS, fallback_share=shares)
    published = _decorate(published, d, cfg)
    log.info(
        "%s forecast as of %s: %d model fits, %d reused from the fit cache, %.1fs",
        cfg.cadence,
        d.date(),
        len(fits.fitted),
        fits.hits,
        time.monotonic() - t0,
    )
    return ForecastRun(
        d,
        cfg.cadence,
        published,
        cands,
        backtest,
        selection,
        series,
        {
            "fit_s": t_fit,
            "backtest_s": t_bt,
            "total_s": time.monotonic() - t0,
            "fits": len(fits.fitted),
            "cached": fits.hits,
            "prefit_s": pool.seconds,
            "distinct_fits": pool.distinct,
            "fit_workers": pool.workers,
            "fits_in_workers": pool.in_workers,
        },
        list(fits.fitted),
    )


def _apply_selection(cands: pd.DataFrame, selection: pd.DataFrame, cfg: EngineConfig):
    want = []
    for r in selection.itertuples(index=False):
        for h in range(r.band_lo, r.band_hi + 1):
            want.append((r.series_key, h, r.model))
    w = pd.DataFrame(want, columns=["series_key", "horizon", "model"])
    picked = cands.merge(w, on=["series_key", "horizon", "model"], how="inner")
    # horizons whose picked model has no forecast (pipeline beyond its horizon) fall back to ets
    missing = w.merge(
        picked[["series_key", "horizon"]], how="left", indicator=True, on=["series_key", "horizon"]
    )
    missing = missing[missing["_merge"] == "left_only"][["series_key", "horizon"]]
    if len(missing):
        fb = cands[cands["model"] == "ets"].merge(missing, on=["series_key", "horizon"])
        picked = pd.concat([picked, fb], ignore_index=True)
    return picked.sort_values(["series_key", "horizon"]).reset_index(drop=True)


def _shares(series: dict[str, pd.Series], last: int = 12) -> dict[str, float]:
    tot = float(series[TOTAL].iloc[-last:].sum())
    return {
        k: (float(s.iloc[-last:].sum()) / tot if tot > 0 else 0.0)
        for k, s in series.items()
        if k != TOTAL
    }


def _decorate(t: pd.DataFrame, as_of: pd.Timestamp, cfg: EngineConfig) -> pd.DataFrame:
    seg_reg = t["series_key"].map(parse_key)
    t = t.assign(
        as_of=as_of.normalize(),
        cadence=cfg.cadence,
        segment=[s for s, _ in seg_reg],
        region=[r for _, r in seg_reg],
        period_end=period_end(t["period_start"], cfg.freq),
    )
    return t[
        [
            "as_of",
            "cadence",
            "series_key",
            "segment",
            "region",
            "horizon",
            "period_start",
            "period_end",
            "model",
            *VALUE_COLS,
        ]
    ]


def target_periods(as_of, cadence: str, horizon: int) -> pd.DatetimeIndex:
    freq = CADENCE_FREQ[cadence]
    return next_periods(period_start(as_of, freq) - pd.Timedelta(days=1), horizon, freq)
