"""Markov-chain attribution with exact removal effects from the absorbing chain.

Chain (order k, default 1): transient states are the last ``min(k, i)`` channels seen after the
``i``-th touch, plus ``(start)``; absorbing states are ``(conversion)`` and ``(null)``. Every
journey (converting or not) contributes its transitions ``start -> s1 -> ... -> sn`` and a final
``sn -> conversion`` (weight = its conversions) / ``sn -> null`` (weight = its non-conversions).
Transition probabilities are the row-normalised counts.

With ``Q`` the transient-to-transient block, ``r`` the one-step conversion probabilities and
``p0`` the start distribution, the conversion probability is ``P = p0 . x`` where
``(I - Q) x = r`` (a linear solve: sparse LU for large state spaces, never an explicit
inverse). Removing channel ``c`` turns every state containing ``c`` into ``null`` (its
incoming transitions are lost), i.e. the same solve restricted to the states without ``c``.

- removal effect ``RE_c = 1 - P(without c) / P``;
- credited conversions ``= total conversions * RE_c / sum RE``;
- value: the conversion edges carry the value of the journeys that convert from that state, so
  ``E[value] = p0 . y`` with ``(I - Q) y = r_value``; value removal effects ``VRE_c`` are defined
  alike and credited value ``= total value * VRE_c / sum VRE``;
- per journey (for per-touch marts): a journey's credit is split over its distinct channels in
  proportion to their removal effects ``RE_c`` (evenly if they are all 0), then evenly over the
  touches of each channel. Per-touch credits of a journey sum to 1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from assets.attribution.journeys import Journeys

log = logging.getLogger(__name__)

START, CONVERSION, NULL = "(start)", "(conversion)", "(null)"
_DENSE_LIMIT = 600  # states; above this the solves use scipy's sparse LU


@dataclass(frozen=True)
class Chain:
    """Aggregated transition counts of an absorbing chain.

    Transient states are indexed ``0..n-1`` (``states[i]`` = tuple of channel names);
    ``src`` / ``dst`` use ``-1`` for start, and ``dst`` uses ``-2`` for conversion and ``-3``
    for null. ``count`` is the number of journeys taking the transition, ``value`` the
    conversion value carried by conversion edges (0 elsewhere).
    """

    channels: tuple[str, ...]
    states: tuple[tuple[str, ...], ...]
    src: np.ndarray
    dst: np.ndarray
    count: np.ndarray
    value: np.ndarray

    def frame(self, sep: str = ">") -> pd.DataFrame:
        """The transitions with readable state labels."""
        labels = np.array([sep.join(s) for s in self.states] + [NULL, CONVERSION, START], object)
        return pd.DataFrame(
            {
                "from_state": labels[self.src],
                "to_state": labels[self.dst],
                "count": self.count,
                "value": self.value,
            }
        )


_S_START, _S_CONV, _S_NULL = -1, -2, -3


def chain_from_journeys(journeys: Journeys, order: int = 1) -> Chain:
    """Count the transitions of all journeys (vectorised; O(touches * order))."""
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    base = journeys.n_channels + 1
    if base**order >= 2**62:
        raise ValueError(f"order {order} is too high for {journeys.n_channels} channels")
    codes = journeys.touch_channel + 1  # 0 is reserved for "no channel" padding
    rank = journeys.touch_rank()
    state = np.zeros(journeys.n_touches, dtype=np.int64)
    for lag in range(order):
        shifted = np.zeros_like(state)
        if lag:
            shifted[lag:] = codes[:-lag]
        else:
            shifted[:] = codes
        state += np.where(rank >= lag, shifted, 0) * base**lag
    uniq, state_idx = _dense_codes(state, base**order)
    weight_j = journeys.conversions + journeys.nulls
    w_touch = journeys.per_touch(weight_j)
    first = rank == 0
    src = np.where(first, _S_START, np.concatenate([[0], state_idx[:-1]]))
    dst = state_idx
    last = journeys.offsets[1:] - 1
    src = np.concatenate([src, state_idx[last], state_idx[last]])
    dst = np.concatenate(
        [dst, np.full(journeys.n_journeys, _S_CONV), np.full(journeys.n_journeys, _S_NULL)]
    )
    count = np.concatenate([w_touch, journeys.conversions, journeys.nulls])
    value = np.concatenate([np.zeros(journeys.n_touches), journeys.value, np.zeros(len(last))])
    keep = count > 0
    src, dst, count, value = src[keep], dst[keep], count[keep], value[keep]
    n = len(uniq)
    key = (src + 3) * (n + 3) + (dst + 3)
    ukey, inv = _dense_codes(key, (n + 3) ** 2)
    states = tuple(_decode_state(int(s), base, order, journeys.channels) for s in uniq)
    return Chain(
        channels=journeys.channels,
        states=states,
        src=(ukey // (n + 3) - 3).astype(np.int64),
        dst=(ukey % (n + 3) - 3).astype(np.int64),
        count=np.bincount(inv, weights=count, minlength=len(ukey)),
        value=np.bincount(inv, weights=value, minlength=len(ukey)),
    )


def _dense_codes(codes: np.ndarray, space: int) -> tuple[np.ndarray, np.ndarray]:
    """Like ``np.unique(codes, return_inverse=True)``; O(n) via a lookup table when the code
    space is small (the common case: 12 channels, order 1 -> 13 codes), sorting otherwise."""
    if space <= 4_000_000:
        present = np.bincount(codes, minlength=space) > 0
        uniq = np.flatnonzero(present)
        lookup = np.cumsum(present) - 1
        return uniq.astype(np.int64), lookup[codes].astype(np.int64)
    uniq, inverse = np.unique(codes, return_inverse=True)
    return uniq.astype(np.int64), inverse.astype(np.int64)


def _decode_state(code: int, base: int, order: int, channels: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for _ in range(order):
        digit = code % base
        code //= base
        if digit:
            out.append(channels[digit - 1])
    return tuple(reversed(out))  # oldest first


def chain_from_transitions(transitions: pd.DataFrame, sep: str | None = ">") -> Chain:
    """A `Chain` from a frame ``from_state, to_state, count[, value]`` (e.g. built in SQL).

    States are ``sep``-joined channel tuples (``sep=None``: every state is one channel, so
    channel names may contain any character); the special labels are ``(start)``,
    ``(conversion)`` and ``(null)``.
    """
    df = transitions.copy()
    if "value" not in df.columns:
        df["value"] = 0.0
    specials = {START: _S_START, CONVERSION: _S_CONV, NULL: _S_NULL}
    labels = sorted(
        (set(df["from_state"]) | set(df["to_state"])) - set(specials), key=lambda s: str(s)
    )
    index = {label: i for i, label in enumerate(labels)} | specials
    states = tuple(
        (str(label),) if sep is None else tuple(str(label).split(sep)) for label in labels
    )
    channels = tuple(sorted({c for s in states for c in s}))
    df = df.groupby(["from_state", "to_state"], as_index=False)[["count", "value"]].sum()
    return Chain(
        channels=channels,
        states=states,
        src=df["from_state"].map(index).to_numpy(np.int64),
        dst=df["to_state"].map(index).to_numpy(np.int64),
        count=df["count"].to_numpy(np.float64),
        value=df["value"].to_numpy(np.float64),
    )


@dataclass(frozen=True)
class MarkovResult:
    channels: tuple[str, ...]
    conversion_probability: float
    expected_value: float
    removal_effects: np.ndarray  # per channel, conversions
    value_removal_effects: np.ndarray  # per channel, value
    total_conversions: float
    total_value: float
    # P(the walk visits the channel) and P(it visits the channel and converts), exact
    visit_probability: np.ndarray | None = None
    visit_and_convert: np.ndarray | None = None

    @property
    def conversion_rate_with(self) -> np.ndarray:
        """P(conversion | the journey visits the channel)."""
        return _ratio(self.visit_and_convert, self.visit_probability)

    @property
    def conversion_rate_without(self) -> np.ndarray:
        """P(conversion | the journey never visits the channel)."""
        return _ratio(
            self.conversion_probability - self.visit_and_convert, 1.0 - self.visit_probability
        )

    @property
    def odds_ratio(self) -> np.ndarray:
        """Conversion odds with the channel over odds without it: the channel's effect, apart
        from how often it is used (removal effects mix both)."""
        with_, without = self.conversion_rate_with, self.conversion_rate_without
        return _ratio(_ratio(with_, 1 - with_), _ratio(without, 1 - without))

    @property
    def conversions(self) -> np.ndarray:
        return _share(self.removal_effects) * self.total_conversions

    @property
    def values(self) -> np.ndarray:
        return _share(self.value_removal_effects) * self.total_value

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "channel": list(self.channels),
                "removal_effect": self.removal_effects,
                "value_removal_effect": self.value_removal_effects,
                "conversions": self.conversions,
                "value": self.values,
                "visit_probability": self.visit_probability,
                "conversion_rate_with": self.conversion_rate_with,
                "conversion_rate_without": self.conversion_rate_without,
                "odds_ratio": self.odds_ratio,
            }
        )


def _ratio(a: np.ndarray | float | None, b: np.ndarray | float | None) -> np.ndarray:
    """a / b, NaN where b <= 0 (or when the inputs are missing)."""
    if a is None or b is None:
        return np.array(np.nan)
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    out = np.full(a.shape, np.nan)
    np.divide(a, b, out=out, where=b > 1e-15)
    return out


def _share(x: np.ndarray) -> np.ndarray:
    total = x.sum()
    return x / total if total > 0 else np.zeros_like(x)


class _System:
    """(I - Q) and right-hand sides for the transient states of a chain."""

    def __init__(self, chain: Chain) -> None:
        n = len(chain.states)
        self.n = n
        out = np.bincount(chain.src + 1, weights=chain.count, minlength=n + 1)
        self.p0 = np.zeros(n)
        inner = (chain.src >= 0) & (chain.dst >= 0)
        start = (chain.src == _S_START) & (chain.dst >= 0)
        conv = (chain.src >= 0) & (chain.dst == _S_CONV)
        if out[0] > 0:
            np.add.at(self.p0, chain.dst[start], chain.count[start] / out[0])
        row_out = out[1:]
        self.qi, self.qj = chain.src[inner], chain.dst[inner]
        self.qv = chain.count[inner] / row_out[self.qi]
        self.rhs = np.zeros((n, 2))
        np.add.at(self.rhs[:, 0], chain.src[conv], chain.count[conv] / row_out[chain.src[conv]])
        np.add.at(self.rhs[:, 1], chain.src[conv], chain.value[conv] / row_out[chain.src[conv]])

    def solve(self, keep: np.ndarray | None = None) -> np.ndarray:
        """[P(conversion), E(value), P(visit a dropped state)] from start, using only the states
        where `keep` is True (the dropped states absorb: conversion and value are lost there)."""
        if keep is None:
            keep = np.ones(self.n, dtype=bool)
        idx = np.flatnonzero(keep)
        m = len(idx)
        hit_now = float(self.p0[~keep].sum())
        if m == 0:
            return np.array([0.0, 0.0, hit_now])
        pos = np.full(self.n, -1, dtype=np.int64)
        pos[idx] = np.arange(m)
        sel = keep[self.qi] & keep[self.qj]
        i, j, v = pos[self.qi[sel]], pos[self.qj[sel]], self.qv[sel]
        into_dropped = keep[self.qi] & ~keep[self.qj]
        hit_rhs = np.zeros(m)
        np.add.at(hit_rhs, pos[self.qi[into_dropped]], self.qv[into_dropped])
        rhs = np.column_stack([self.rhs[idx], hit_rhs])
        if m <= _DENSE_LIMIT:
            a = np.eye(m)
            np.add.at(a, (i, j), -v)
            x = np.linalg.solve(a, rhs)
        else:
            from scipy.sparse import coo_matrix, identity
            from scipy.sparse.linalg import splu

            a = (identity(m, format="csc") - coo_matrix((v, (i, j)), shape=(m, m))).tocsc()
            x = splu(a).solve(rhs)
        out = self.p0[idx] @ x
        out[2] += hit_now
        return out


def removal_effects(chain: Chain) -> MarkovResult:
    """Exact conversion probability, expected value, per-channel removal effects and lift."""
    system = _System(chain)
    p, ev, _ = (float(x) for x in system.solve())
    k_n = len(chain.channels)
    re, vre, visit, without = np.zeros(k_n), np.zeros(k_n), np.zeros(k_n), np.zeros(k_n)
    for k, channel in enumerate(chain.channels):
        keep = np.fromiter((channel not in s for s in chain.states), bool, len(chain.states))
        p_c, ev_c, visit[k] = system.solve(keep)
        without[k] = p_c
        re[k] = max(0.0, 1.0 - p_c / p) if p > 0 else 0.0
        vre[k] = max(0.0, 1.0 - ev_c / ev) if ev > 0 else 0.0
    conv_total = float(chain.count[chain.dst == _S_CONV].sum())
    value_total = float(chain.value[chain.dst == _S_CONV].sum())
    log.info(
        "markov: %d states, %d transitions, P(conversion)=%.6f",
        len(chain.states),
        len(chain.src),
        p,
    )
    return MarkovResult(
        chain.channels, p, ev, re, vre, conv_total, value_total, visit, np.maximum(p - without, 0)
    )


def markov(journeys: Journeys, order: int = 1) -> MarkovResult:
    """Removal-effect attribution of `journeys` with a chain of the given order."""
    return removal_effects(chain_from_journeys(journeys, order))


def distribute_by_channel_weight(journeys: Journeys, channel_weight: np.ndarray) -> np.ndarray:
    """Per-touch credits: a journey's 1 split over its distinct channels by `channel_weight`.

    A channel's share is then split evenly over its touches in the journey. Journeys whose
    channels all weigh 0 split evenly over their distinct channels.
    """
    if journeys.n_touches == 0:
        return np.zeros(0)
    mult, distinct = journeys.channel_multiplicity()
    w = np.asarray(channel_weight, dtype=np.float64)[journeys.touch_channel]
    per_touch = w / mult
    total = journeys.per_touch(journeys.journey_sum(per_touch))
    even = 1.0 / (mult * journeys.per_touch(distinct))
    return np.where(
        total > 0, np.divide(per_touch, total, out=np.zeros_like(total), where=total > 0), even
    )


def markov_touch_credits(journeys: Journeys, result: MarkovResult) -> np.ndarray:
    """Per-touch Markov credits (sum to 1 per journey), from the result's removal effects."""
    index = {c: i for i, c in enumerate(result.channels)}
    weight = np.array(
        [result.removal_effects[index[c]] if c in index else 0.0 for c in journeys.channels]
    )
    return distribute_by_channel_weight(journeys, weight)
