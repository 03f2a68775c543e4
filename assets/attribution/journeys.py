"""Journeys: ordered marketing touches per conversion opportunity, held as flat numpy arrays.

A `Journeys` value is the one input every attribution model takes. It is a CSR-style layout:
touches of journey ``j`` are ``touch_channel[offsets[j]:offsets[j + 1]]`` in touch order, so
models are vectorised over all touches at once (no Python loop per journey).

A journey carries *weights* rather than a single flag, so the same structure represents both
input formats:

- journey rows (one row per touch): ``conversions`` is 1 for a converting journey, else 0, and
  ``nulls = 1 - conversions``;
- aggregated paths (one row per distinct path): ``conversions`` / ``nulls`` are the counts of
  journeys with that path that did / did not convert, ``value`` their total conversion value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Journeys:
    """Ordered touches of many journeys (see module docstring for the layout)."""

    channels: tuple[str, ...]
    offsets: np.ndarray  # int64, len J + 1, offsets[0] == 0, strictly increasing
    touch_channel: np.ndarray  # int64 channel codes (index into `channels`), len T
    conversions: np.ndarray  # float64, len J
    value: np.ndarray  # float64, len J (total conversion value of the journey / path)
    nulls: np.ndarray  # float64, len J (non-converting journeys represented)
    journey_ids: np.ndarray | None = None  # labels, len J
    touch_time: np.ndarray | None = None  # float64 days since epoch, len T
    reference_time: np.ndarray | None = None  # float64 days (conversion / close), len J, NaN ok
    lead_creation: np.ndarray | None = None  # bool, len T (W-shaped marker)
    opp_creation: np.ndarray | None = None  # bool, len T (W-shaped marker)

    def __post_init__(self) -> None:
        j = len(self.offsets) - 1
        if j < 0 or self.offsets[0] != 0 or self.offsets[-1] != len(self.touch_channel):
            raise ValueError("offsets must start at 0 and end at the number of touches")
        if j and np.any(np.diff(self.offsets) <= 0):
            raise ValueError("every journey needs at least one touch")
        for name in ("conversions", "value", "nulls"):
            arr = getattr(self, name)
            if len(arr) != j:
                raise ValueError(f"{name} has {len(arr)} entries for {j} journeys")
            if np.any(~np.isfinite(arr)) or np.any(arr < 0):
                raise ValueError(f"{name} must be finite and non-negative")
        if len(self.touch_channel) and (
            self.touch_channel.min() < 0 or self.touch_channel.max() >= len(self.channels)
        ):
            raise ValueError("touch_channel codes must index `channels`")

    # -- shape helpers -------------------------------------------------------------------------
    @property
    def n_journeys(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_touches(self) -> int:
        return len(self.touch_channel)

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    def lengths(self) -> np.ndarray:
        """Touches per journey."""
        return np.diff(self.offsets)

    def touch_journey(self) -> np.ndarray:
        """Journey index of every touch."""
        return np.repeat(np.arange(self.n_journeys, dtype=np.int64), self.lengths())

    def touch_rank(self) -> np.ndarray:
        """0-based position of every touch inside its journey."""
        return np.arange(self.n_touches, dtype=np.int64) - np.repeat(
            self.offsets[:-1], self.lengths()
        )

    def per_touch(self, journey_values: np.ndarray) -> np.ndarray:
        """Broadcast a per-journey array to touches."""
        return np.repeat(journey_values, self.lengths())

    def journey_sum(self, touch_values: np.ndarray) -> np.ndarray:
        """Sum a per-touch array within each journey."""
        return np.add.reduceat(touch_values, self.offsets[:-1]) if self.n_journeys else touch_values

    def channel_multiplicity(self) -> tuple[np.ndarray, np.ndarray]:
        """Per touch: count of its channel in its journey; per journey: distinct channels."""
        if not self.n_touches:
            return np.zeros(0, np.int64), np.zeros(self.n_journeys, np.int64)
        key = self.touch_journey() * self.n_channels + self.touch_channel
        uniq, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
        per_touch = counts[inverse]
        distinct = np.bincount(uniq // self.n_channels, minlength=self.n_journeys)
        return per_touch, distinct

    @property
    def total_conversions(self) -> float:
        return float(self.conversions.sum())

    @property
    def total_value(self) -> float:
        return float(self.value.sum())


def _factorize_channels(channel: pd.Series | Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Channel codes with channels sorted by name (deterministic whatever the input order)."""
    series = channel if isinstance(channel, pd.Series) else pd.Series(channel, dtype="object")
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy().astype(np.int64)
        if (codes < 0).any():
            raise ValueError("channel has null values")
        categories = [str(c) for c in series.cat.categories]
        used = np.flatnonzero(np.bincount(codes, minlength=len(categories)))
        order = sorted(used, key=lambda i: categories[i])
        remap = np.full(len(categories), -1, dtype=np.int64)
        remap[order] = np.arange(len(order))
        return remap[codes], tuple(categories[i] for i in order)
    if series.isna().any():
        raise ValueError("channel has null values")
    codes, uniques = pd.factorize(series.astype(str), sort=True)
    return codes.astype(np.int64), tuple(str(u) for u in uniques)


def from_touches(
    touches: pd.DataFrame,
    *,
    journey_col: str = "journey_id",
    channel_col: str = "channel",
    order_col: str = "position",
    converted_col: str = "converted",
    value_col: str | None = "value",
    time_col: str | None = None,
    reference_time_col: str | None = None,
    lead_creation_col: str | None = None,
    opp_creation_col: str | None = None,
) -> Journeys:
    """Build `Journeys` from one row per touch.

    Touches are ordered by ``order_col`` inside each journey (ties keep input row order).
    ``converted`` and ``value`` are journey-level (repeated on each row; the maximum of a
    journey's non-null cells is used). ``time_col`` (timestamps) feeds the time-decay model;
    ``reference_time_col`` is the journey's conversion / close time (defaults to its last touch).
    Boolean marker columns flag the lead-creation and opportunity-creation touches (W-shaped).
    """
    if touches.empty:
        raise ValueError("no touches")
    missing = [
        c for c in (journey_col, channel_col, order_col, converted_col) if c not in touches.columns
    ]
    if missing:
        raise ValueError(f"missing columns {missing}; have {list(touches.columns)}")
    jcodes, jlabels = pd.factorize(touches[journey_col], sort=False)
    if (jcodes < 0).any():
        raise ValueError(f"{journey_col} has null values")
    order_key = touches[order_col]
    if pd.api.types.is_datetime64_any_dtype(order_key):
        order_key = order_key.astype("int64")
    perm = _touch_order(jcodes, np.asarray(order_key))
    n_j = len(jlabels)
    counts = np.bincount(jcodes, minlength=n_j)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    codes, channels = _factorize_channels(touches[channel_col])
    codes = codes[perm]

    def journey_max(col: str) -> np.ndarray:
        raw = touches[col]
        if raw.dtype == bool:
            raw = raw.astype(np.float64)
        vals = pd.to_numeric(raw, errors="raise").to_numpy(dtype=np.float64)[perm]
        if not n_j:
            return np.zeros(0)
        with np.errstate(invalid="ignore"):
            out = np.fmax.reduceat(vals, offsets[:-1])  # fmax skips NaN cells
        return np.nan_to_num(out, nan=0.0)

    conversions = journey_max(converted_col)
    value = (
        journey_max(value_col)
        if value_col is not None and value_col in touches.columns
        else np.zeros(n_j)
    )
    nulls = (conversions <= 0).astype(np.float64)

    touch_time = None
    if time_col is not None:
        touch_time = _to_days(touches[time_col])[perm]
    reference_time = None
    if reference_time_col is not None:
        ref = _to_days(touches[reference_time_col])[perm]
        reference_time = np.fmax.reduceat(ref, offsets[:-1])

    def marker(col: str | None) -> np.ndarray | None:
        if col is None:
            return None
        return touches[col].fillna(False).astype(bool).to_numpy()[perm]

    return Journeys(
        channels=channels,
        offsets=offsets,
        touch_channel=codes,
        conversions=conversions,
        value=value,
        nulls=nulls,
        journey_ids=np.asarray(jlabels, dtype=object),
        touch_time=touch_time,
        reference_time=reference_time,
        lead_creation=marker(lead_creation_col),
        opp_creation=marker(opp_creation_col),
    )


def _touch_order(jcodes: np.ndarray, order_key: np.ndarray) -> np.ndarray:
    """Permutation sorting touches by (journey, order key); ties keep input row order."""
    if np.issubdtype(order_key.dtype, np.integer) and len(order_key):
        lo, hi = int(order_key.min()), int(order_key.max())
        span = hi - lo + 1
        if span * (int(jcodes.max()) + 1) < 2**62:  # one combined key: a single stable sort
            key = jcodes.astype(np.int64) * span + (order_key.astype(np.int64) - lo)
            if np.all(key[1:] >= key[:-1]):  # already in order (e.g. SQL `order by`)
                return np.arange(len(key))
            return np.argsort(key, kind="stable")
    return np.lexsort((order_key, jcodes))


def _to_days(col: pd.Series) -> np.ndarray:
    """Timestamps (or numbers already in days) as float days since the epoch; NaT -> NaN."""
    if pd.api.types.is_numeric_dtype(col):
        return col.to_numpy(dtype=np.float64)
    ts = pd.to_datetime(col, utc=True, format="ISO8601")
    ns = ts.astype("int64").to_numpy().astype(np.float64)
    ns[ts.isna().to_numpy()] = np.nan
    unit = ts.dt.unit if hasattr(ts.dt, "unit") else "ns"
    per_day = {"s": 86_400.0, "ms": 86_400e3, "us": 86_400e6, "ns": 86_400e9}[unit]
    return ns / per_day


def from_paths(
    paths: Sequence[Sequence[str]],
    conversions: Sequence[float] | np.ndarray,
    nulls: Sequence[float] | np.ndarray | None = None,
    value: Sequence[float] | np.ndarray | None = None,
) -> Journeys:
    """Build `Journeys` from aggregated paths (each a sequence of channel names) with counts."""
    n = len(paths)
    lengths = np.fromiter((len(p) for p in paths), dtype=np.int64, count=n)
    if n and lengths.min() == 0:
        raise ValueError(f"path #{int(np.argmin(lengths))} is empty")
    flat = [c for p in paths for c in p]
    codes, channels = _factorize_channels(flat)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)

    def arr(x: Sequence[float] | np.ndarray | None) -> np.ndarray:
        return np.zeros(n) if x is None else np.asarray(x, dtype=np.float64)

    return Journeys(
        channels=channels,
        offsets=offsets,
        touch_channel=codes,
        conversions=arr(conversions),
        value=arr(value),
        nulls=arr(nulls),
        journey_ids=np.arange(n),
    )


def journey_paths(journeys: Journeys) -> list[tuple[str, ...]]:
    """The channel path of every journey (for display and tests; not used on hot paths)."""
    names = np.asarray(journeys.channels, dtype=object)[journeys.touch_channel]
    return [
        tuple(names[journeys.offsets[j] : journeys.offsets[j + 1]])
        for j in range(journeys.n_journeys)
    ]
