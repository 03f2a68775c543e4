"""Calendar helpers: forecast periods are Monday-start weeks ("W") or calendar months ("M").

A period is named by its first day (`period_start`); `period_end` is its last day (inclusive).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

FREQS = ("W", "M")
SEASONAL_PERIOD = {"W": 52, "M": 12}
CADENCE_FREQ = {"weekly": "W", "monthly": "M"}
FREQ_CADENCE = {v: k for k, v in CADENCE_FREQ.items()}
_PANDAS_FREQ = {"W": "W-MON", "M": "MS"}


def check_freq(freq: str) -> str:
    if freq not in FREQS:
        raise ValueError(f"freq must be one of {FREQS} (W = weekly, M = monthly), got {freq!r}")
    return freq


def period_start(d, freq: str) -> pd.Timestamp:
    """First day of the period containing date/timestamp `d` (tz dropped, normalized)."""
    ts = pd.Timestamp(d)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    ts = ts.normalize()
    if check_freq(freq) == "W":
        return ts - pd.Timedelta(days=ts.day_of_week)
    return ts.replace(day=1)


def period_starts(dates, freq: str) -> pd.Series:
    """Vectorized `period_start` over a Series of dates."""
    s = pd.to_datetime(pd.Series(dates)).dt.normalize()
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    if check_freq(freq) == "W":
        return s - pd.to_timedelta(s.dt.day_of_week, unit="D")
    return s.dt.to_period("M").dt.to_timestamp()


def period_range(start, periods: int, freq: str) -> pd.DatetimeIndex:
    return pd.date_range(period_start(start, freq), periods=periods, freq=_PANDAS_FREQ[freq])


def period_index(start, end, freq: str) -> pd.DatetimeIndex:
    """All period starts from the period of `start` to the period of `end` inclusive."""
    return pd.date_range(
        period_start(start, freq), period_start(end, freq), freq=_PANDAS_FREQ[check_freq(freq)]
    )


def next_periods(last_start, h: int, freq: str) -> pd.DatetimeIndex:
    """The `h` period starts after the period starting at `last_start`."""
    return pd.date_range(
        period_start(last_start, freq), periods=h + 1, freq=_PANDAS_FREQ[check_freq(freq)]
    )[1:]


def period_end(starts, freq: str):
    """Last day (inclusive) of each period."""
    s = pd.DatetimeIndex(pd.to_datetime(starts))
    if check_freq(freq) == "W":
        return s + pd.Timedelta(days=6)
    return s + pd.offsets.MonthEnd(0)


def quarter_end_dummies(starts, freq: str) -> np.ndarray:
    """Columns marking the period containing a quarter's last day and the period before it."""
    s = pd.DatetimeIndex(pd.to_datetime(starts))
    ends = period_end(s, freq)
    if freq == "M":
        qe = np.isin(s.month, [3, 6, 9, 12]).astype(float)
        return qe[:, None]
    q_end = (s + pd.offsets.QuarterEnd(0)).normalize()
    contains = (q_end >= s) & (q_end <= ends)
    # the week before the one containing the quarter end
    nxt = s + pd.Timedelta(days=7)
    q_end_next = (nxt + pd.offsets.QuarterEnd(0)).normalize()
    before = (q_end_next >= nxt) & (q_end_next <= nxt + pd.Timedelta(days=6)) & ~contains
    return np.column_stack([contains.astype(float), before.astype(float)])


def as_of_timestamp(as_of) -> pd.Timestamp:
    """An as-of date (date, 'YYYY-MM-DD' or timestamp) as a naive UTC timestamp."""
    ts = pd.Timestamp(as_of)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def to_date(d) -> dt.date:
    return as_of_timestamp(d).date()
