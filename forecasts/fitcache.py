"""Cache of statistical model fits, per (cadence, series, model spec, origin, training input).

A backtest origin's forecast cannot change once the origin is past: the series it trains on is
the bookings as known at that origin (no look-ahead), so next week's run, or a rerun of the same
partition, would refit exactly the same thing. `FitCache.forecast` returns the stored forecast
when an entry with the same key exists and fits (then stores) otherwise. The key:

* `spec_hash`  — model name, cadence, horizon, the model's grid (ETS configurations, ARIMA
  orders), `MODEL_VERSION` and the statsmodels version: changing the model set, the profile
  or the library invalidates;
* `input_hash` — the exact training series (values and period starts) at that origin:
  changed data at an old origin invalidates that origin only.

Values are float64 round-tripped through DuckDB DOUBLE, so a cached run is bit-identical to an
uncached one. The table is `forecasts.fit_cache` (one row per horizon); writing an entry
replaces any older entry of the same (cadence, series, model, spec, origin).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from forecasts.models import FOURIER_K, Forecast
from forecasts.periods import next_periods

log = logging.getLogger(__name__)

SCHEMA = "forecasts"
TABLE = f"{SCHEMA}.fit_cache"
# bump when a model's code changes its output for the same input
MODEL_VERSION = 1
VALUE_COLS = ["point", "lo80", "hi80", "lo95", "hi95"]
KEY_COLS = ["cadence", "series_key", "model", "spec_hash", "origin", "input_hash"]
DDL = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    cadence VARCHAR, series_key VARCHAR, model VARCHAR, spec_hash VARCHAR, origin TIMESTAMP,
    input_hash VARCHAR, horizon INTEGER, point DOUBLE, lo80 DOUBLE, hi80 DOUBLE, lo95 DOUBLE,
    hi95 DOUBLE, run_id VARCHAR, created_at TIMESTAMP)"""


def spec_hash(model: str, cadence: str, horizon: int, grid) -> str:
    import statsmodels

    text = repr((model, cadence, horizon, grid, FOURIER_K, MODEL_VERSION, statsmodels.__version__))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def input_hash(y: pd.Series) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(y.to_numpy(dtype=np.float64)).tobytes())
    h.update(np.asarray(y.index.values.astype("datetime64[D]").astype(np.int64)).tobytes())
    return h.hexdigest()[:24]


@dataclass
class FitCache:
    """In-memory view of the cache for one run; `new` holds the entries to persist."""

    entries: dict[tuple, np.ndarray] = field(default_factory=dict)  # key -> (H, 5) values
    new: dict[tuple, np.ndarray] = field(default_factory=dict)
    fitted: list[tuple] = field(default_factory=list)  # (origin, series_key, model) fitted
    hits: int = 0
    prefitted: set[tuple] = field(default_factory=set)  # keys fitted ahead, not yet asked for

    @staticmethod
    def key(cadence: str, series_key: str, model: str, spec: str, origin, y: pd.Series) -> tuple:
        return (cadence, series_key, model, spec, pd.Timestamp(origin), input_hash(y))

    def get(self, key: tuple, horizon: int) -> np.ndarray | None:
        """The (horizon, 5) values stored for `key` (loaded or fitted in this run), if whole."""
        vals = self.entries.get(key)
        if vals is None:
            vals = self.new.get(key)
        return vals if vals is not None and len(vals) == horizon else None

    def put_prefitted(self, key: tuple, values: np.ndarray, fitted: tuple) -> None:
        """Store a fit made ahead of `forecast` (engine.prefit): it counts as fitted in this
        run, and the `forecast` call that asks for it is not counted as a reuse."""
        self.new[key] = values
        self.fitted.append(fitted)
        self.prefitted.add(key)

    def forecast(
        self,
        cadence: str,
        series_key: str,
        model: str,
        spec: str,
        origin: pd.Timestamp,
        y: pd.Series,
        horizon: int,
        freq: str,
        fit: Callable[[], Forecast],
    ) -> Forecast:
        key = self.key(cadence, series_key, model, spec, origin, y)
        vals = self.get(key, horizon)
        if vals is not None:
            if key in self.prefitted:
                self.prefitted.discard(key)
            else:
                self.hits += 1
            return Forecast(model, next_periods(y.index[-1], horizon, freq), *vals.T.copy())
        fc = fit()
        self.fitted.append((pd.Timestamp(origin), series_key, model))
        self.new[key] = np.column_stack([fc.point, fc.lo80, fc.hi80, fc.lo95, fc.hi95])
        return fc


def load(con: duckdb.DuckDBPyConnection, cadence: str, origins) -> FitCache:
    """The cached entries of `cadence` at `origins` (empty when the table does not exist)."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? "
        "AND table_name = 'fit_cache'",
        [SCHEMA],
    ).fetchone()[0]
    cache = FitCache()
    if not exists or not len(origins):
        return cache
    ors = sorted({pd.Timestamp(o) for o in origins})
    df = con.execute(
        f"SELECT {', '.join(KEY_COLS)}, horizon, {', '.join(VALUE_COLS)} FROM {TABLE} "
        "WHERE cadence = ? AND origin IN (SELECT unnest(?::TIMESTAMP[])) "
        f"ORDER BY {', '.join(KEY_COLS)}, horizon",
        [cadence, [o.to_pydatetime() for o in ors]],
    ).df()
    # rows are ordered by key then horizon: one entry per run of equal keys (numpy slices,
    # not a pandas groupby: ~100x fewer objects for the ~1,600 rows of a weekly run)
    cols = [df[c].tolist() for c in KEY_COLS]
    keys = list(zip(*cols, strict=True))
    hs = df["horizon"].to_numpy()
    vals = df[VALUE_COLS].to_numpy(dtype=np.float64)
    starts = [i for i in range(len(keys)) if i == 0 or keys[i] != keys[i - 1]]
    for a, b in zip(starts, [*starts[1:], len(keys)], strict=True):
        k = keys[a]
        if not np.array_equal(hs[a:b], np.arange(1, b - a + 1)):
            continue  # damaged entry: refit
        cache.entries[(*k[:4], pd.Timestamp(k[4]), k[5])] = vals[a:b]
    log.info("fit cache: %d entries loaded for %s", len(cache.entries), cadence)
    return cache


def save(con: duckdb.DuckDBPyConnection, cache: FitCache, run_id: str, now) -> int:
    """Persist the entries fitted in this run (replacing older entries of the same series,
    model, spec and origin), in one transaction. Returns the number of entries written."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    con.execute(DDL)
    if not cache.new:
        return 0
    rows = []
    for key, vals in cache.new.items():
        for h, v in enumerate(vals, start=1):
            rows.append((*key, h, *map(float, v)))
    df = pd.DataFrame(rows, columns=[*KEY_COLS, "horizon", *VALUE_COLS])
    df["run_id"] = run_id
    df["created_at"] = pd.Timestamp(now)
    con.execute("BEGIN TRANSACTION")
    try:
        con.register("_fit_new", df)
        con.execute(
            f"DELETE FROM {TABLE} t USING (SELECT DISTINCT cadence, series_key, model, "
            "spec_hash, origin FROM _fit_new) n WHERE t.cadence = n.cadence AND "
            "t.series_key = n.series_key AND t.model = n.model AND t.spec_hash = n.spec_hash "
            "AND t.origin = n.origin"
        )
        con.execute(f"INSERT INTO {TABLE} SELECT * FROM _fit_new")
        con.unregister("_fit_new")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return len(cache.new)
