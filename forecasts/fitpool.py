"""The statistical fits of one forecast run, spread over processes.

A cold weekly run fits ETS and ARIMA for 7 series at 9 origins (126 fits) and that is most of
its time; each fit is independent CPU work (statsmodels, single-threaded BLAS), so they can run
side by side. `run_fits` runs a list of fits in this process and, when there are enough of them,
in `workers - 1` extra processes at the same time: the extra processes take fits from the head
of the list (the most expensive first), this process from the tail, until none is left. A fit
gives the same float64 values in any process (same code, same library, one BLAS thread), so the
result is bit-identical to fitting serially (tests/unit/test_forecast_pool.py).

Identical fits are done once: two fits with the same model, grid and training series (values
and period starts) give the same forecast, whatever series or origin they belong to.

The extra processes are started with "spawn" (never fork a process that runs threads: Dagster
and DuckDB do) and stopped when the fits are done; one process costs ~200 MB and ~2 s of imports
(statsmodels, scipy), hence the minimum number of fits (`MIN_POOL_FITS`) before a pool is worth
starting. `SALESOPS_FORECAST_WORKERS` sets the number of fitting processes (default: the CPUs
this process may use, at most 2, and 1 when the load average says no core is idle: then a
second process only adds its start-up cost to the same CPU share; 1 = serial, no extra process).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

WORKERS_ENV = "SALESOPS_FORECAST_WORKERS"
MAX_DEFAULT_WORKERS = 2
# below this many distinct fits an extra process costs more (start-up imports) than it saves
MIN_POOL_FITS = 24
# relative cost of one fit, to hand the expensive ones out first (measured on weekly series)
_COST = {"arima": 6.0, "ets": 1.0}


@dataclass(frozen=True)
class FitTask:
    """One statistical fit: `model` ("ets" or "arima") on `y` for `horizon` periods, with the
    model's grid (ETS configurations, or (ARIMA orders, seasonal orders))."""

    model: str
    y: pd.Series
    horizon: int
    freq: str
    grid: tuple

    def identity(self) -> tuple:
        """Everything the fit's result depends on (identical tasks give identical forecasts)."""
        from forecasts.fitcache import input_hash

        return (self.model, self.horizon, self.freq, repr(self.grid), input_hash(self.y))


def default_workers() -> int:
    """Fitting processes: `SALESOPS_FORECAST_WORKERS`, else the usable CPUs (at most 2), or 1
    when the machine is saturated (1-minute load average >= CPUs + 1)."""
    raw = os.environ.get(WORKERS_ENV, "").strip()
    if raw:
        try:
            n = int(raw)
        except ValueError:
            raise ValueError(f"{WORKERS_ENV} must be a whole number >= 1, got {raw!r}") from None
        if n < 1:
            raise ValueError(f"{WORKERS_ENV} must be a whole number >= 1, got {raw!r}")
        return n
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    load = os.getloadavg()[0]
    if load >= cpus + 1:
        # no idle core: a second process would only add its start-up to the same CPU share
        log.info("load average %.1f on %d CPUs: fitting in this process only", load, cpus)
        return 1
    return max(1, min(cpus, MAX_DEFAULT_WORKERS))


def fit_values(task: FitTask) -> np.ndarray:
    """The (horizon, 5) array point, lo80, hi80, lo95, hi95 of one fit."""
    from forecasts.models import arima, ets

    if task.model == "ets":
        fc = ets(task.y, task.horizon, task.freq, configs=task.grid)
    elif task.model == "arima":
        orders, seasonal = task.grid
        fc = arima(task.y, task.horizon, task.freq, orders=orders, seasonal_orders=seasonal)
    else:
        raise ValueError(f"unknown model {task.model!r}; the pool fits 'ets' and 'arima'")
    return np.column_stack([fc.point, fc.lo80, fc.hi80, fc.lo95, fc.hi95])


def _worker_init() -> None:
    # the fits set one BLAS thread themselves; keep the worker's own pools small too
    logging.getLogger("forecasts").setLevel(logging.WARNING)


@dataclass
class PoolStats:
    tasks: int = 0  # fits asked for
    distinct: int = 0  # fits done (identical tasks fitted once)
    in_workers: int = 0  # of those, done by the extra processes
    workers: int = 1  # fitting processes used (1 = serial)
    seconds: float = 0.0


def run_fits(
    tasks: list[FitTask],
    workers: int | None = None,
    min_pool_fits: int | None = None,
    fit_here: bool = True,
) -> tuple[list[np.ndarray], PoolStats]:
    """The values of every task (in task order) and how they were computed. Identical tasks
    are fitted once; with `workers` > 1 and at least `min_pool_fits` distinct fits, `workers - 1`
    extra processes fit alongside this one (`fit_here=False`: this one only waits for them).
    `min_pool_fits` defaults to `MIN_POOL_FITS`."""
    t0 = time.monotonic()
    min_pool_fits = MIN_POOL_FITS if min_pool_fits is None else min_pool_fits
    workers = default_workers() if workers is None else max(1, int(workers))
    ids = [t.identity() for t in tasks]
    first: dict[tuple, int] = {}
    for i, ident in enumerate(ids):
        first.setdefault(ident, i)
    distinct = list(first.values())  # task positions, in task order
    stats = PoolStats(tasks=len(tasks), distinct=len(distinct))
    done: dict[int, np.ndarray] = {}
    if multiprocessing.current_process().daemon:
        workers = 1  # a daemonic process may not start processes: fit here
    if workers > 1 and len(distinct) >= min_pool_fits:
        stats.workers = workers
        try:
            stats.in_workers = _run_pooled(tasks, distinct, workers, done, fit_here)
        except (BrokenProcessPool, OSError) as exc:  # e.g. no room for a process: go on here
            log.warning("forecast fit pool failed (%s); fitting the rest in this process", exc)
            stats.workers = 1
    for i in distinct:
        if i not in done:
            done[i] = fit_values(tasks[i])
    stats.seconds = time.monotonic() - t0
    if stats.tasks:
        log.info(
            "%d model fits (%d distinct) in %.1fs with %d process(es), %d in the extra ones",
            stats.tasks,
            stats.distinct,
            stats.seconds,
            stats.workers,
            stats.in_workers,
        )
    return [done[first[ident]] for ident in ids], stats


def _run_pooled(
    tasks: list[FitTask],
    distinct: list[int],
    workers: int,
    done: dict[int, np.ndarray],
    fit_here: bool = True,
) -> int:
    """Fit `distinct` tasks with `workers - 1` extra processes taking the most expensive first
    and this process taking the cheapest; returns how many the extra processes did."""
    from forecasts.threads import single_threaded_blas

    order = sorted(distinct, key=lambda i: (-_COST.get(tasks[i].model, 1.0), i))
    queue = deque(order)
    extra = workers - 1
    in_flight: dict[Future, int] = {}
    by_workers = 0
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=extra, mp_context=ctx, initializer=_worker_init)
    try:
        while queue or in_flight:
            # keep two fits queued per extra process so none waits for this one
            while queue and (len(in_flight) < 2 * extra or not fit_here):
                i = queue.popleft()
                in_flight[pool.submit(fit_values, tasks[i])] = i
            if queue and fit_here:
                i = queue.pop()
                with single_threaded_blas():
                    done[i] = fit_values(tasks[i])
                finished = [f for f in in_flight if f.done()]
            else:
                finished, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
            for f in finished:
                i = in_flight.pop(f)
                done[i] = f.result()
                by_workers += 1
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return by_workers
