"""Shapley-value attribution over channel coalitions.

Characteristic function (Zhao, Mahboobi & Bagheri 2018, "Shapley Value Methods for Attribution
Modeling in Online Advertising", arXiv:1804.05327): ``v(S)`` = conversions (or conversion value)
of the journeys whose set of channels is a subset of ``S``, i.e. ``v(S) = sum_{T <= S} R(T)``
with ``R(T)`` the conversions of journeys whose channel set is exactly ``T``.

Two exact computations, equal by construction (tests check both against brute force):

- ``coalitions``: enumerate all ``2^n`` coalitions of the ``n`` channels (bit masks), build
  ``v`` by a subset-sum (zeta) transform in ``O(n 2^n)``, then apply the Shapley formula
  ``phi_i = sum_{S not containing i} |S|! (n-|S|-1)! / n! * (v(S + i) - v(S))``. Used up to
  `MAX_COALITION_CHANNELS` channels.
- ``simplified``: ``v`` is a sum of unanimity games ``R(T) * u_T`` and the Shapley value of
  ``u_T`` gives ``1/|T|`` to each member of ``T``, so ``phi_i = sum_{T containing i} R(T)/|T|``:
  each converting journey splits its conversion evenly over its distinct channels. Exact and
  ``O(journeys * channels)``; used past `MAX_COALITION_CHANNELS` (``auto``).

Per touch (for marts): a journey's credit is split evenly over its distinct channels (its exact
Shapley share in the game above) and a channel's share evenly over its touches there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from math import factorial

import numpy as np
import pandas as pd

from assets.attribution.journeys import Journeys

log = logging.getLogger(__name__)

MAX_COALITION_CHANNELS = 16
METHODS = ("auto", "coalitions", "simplified")


@dataclass(frozen=True)
class ChannelSets:
    """Conversions and value per exact channel set (the sufficient statistic of the game)."""

    channels: tuple[str, ...]
    sets: tuple[frozenset[str], ...]
    conversions: np.ndarray
    value: np.ndarray


def journey_masks(journeys: Journeys) -> np.ndarray:
    """Bit mask of each journey's channel set (bit i = channel i); needs <= 62 channels."""
    if journeys.n_channels > 62:
        raise ValueError("channel bit masks need <= 62 channels")
    bits = np.left_shift(np.int64(1), journeys.touch_channel.astype(np.int64))
    return np.bitwise_or.reduceat(bits, journeys.offsets[:-1])


def _mask_totals(journeys: Journeys) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct masks of converting journeys with their conversions and value."""
    converting = (journeys.conversions > 0) | (journeys.value > 0)
    masks = journey_masks(journeys)[converting]
    conv, val = journeys.conversions[converting], journeys.value[converting]
    if journeys.n_channels <= 20:  # bincount over the whole mask space: O(journeys)
        space = 1 << journeys.n_channels
        c = np.bincount(masks, weights=conv, minlength=space)
        v = np.bincount(masks, weights=val, minlength=space)
        present = np.flatnonzero(np.bincount(masks, minlength=space))
        return present.astype(np.int64), c[present], v[present]
    umask, inv = np.unique(masks, return_inverse=True)
    return (
        umask,
        np.bincount(inv, weights=conv, minlength=len(umask)),
        np.bincount(inv, weights=val, minlength=len(umask)),
    )


def channel_sets(journeys: Journeys) -> ChannelSets:
    """Aggregate converting journeys by their exact set of channels."""
    n_c = journeys.n_channels
    if journeys.n_touches == 0:
        return ChannelSets(journeys.channels, (), np.zeros(0), np.zeros(0))
    if n_c <= 62:
        umask, conv, val = _mask_totals(journeys)
        sets = tuple(
            frozenset(journeys.channels[b] for b in range(n_c) if (int(m) >> b) & 1) for m in umask
        )
        return ChannelSets(journeys.channels, sets, conv, val)
    key = np.unique(journeys.touch_journey() * n_c + journeys.touch_channel)
    j, c = key // n_c, key % n_c
    agg: dict[frozenset[str], list[float]] = {}
    starts = np.searchsorted(j, np.arange(journeys.n_journeys + 1))
    for jj in range(journeys.n_journeys):
        if journeys.conversions[jj] <= 0 and journeys.value[jj] <= 0:
            continue
        s = frozenset(journeys.channels[x] for x in c[starts[jj] : starts[jj + 1]])
        acc = agg.setdefault(s, [0.0, 0.0])
        acc[0] += journeys.conversions[jj]
        acc[1] += journeys.value[jj]
    sets = tuple(sorted(agg, key=lambda s: sorted(s)))
    return ChannelSets(
        journeys.channels,
        sets,
        np.array([agg[s][0] for s in sets]),
        np.array([agg[s][1] for s in sets]),
    )


def channel_sets_from_frame(frame: pd.DataFrame, sep: str = ">") -> ChannelSets:
    """`ChannelSets` from ``channel_set`` (a list of names, or ``sep``-joined names),
    ``conversions``[, ``value``]; rows with the same set add up."""
    sets = [
        frozenset(str(c) for c in s) if not isinstance(s, str) else frozenset(s.split(sep))
        for s in frame["channel_set"]
    ]
    channels = tuple(sorted({c for s in sets for c in s}))
    value = frame["value"] if "value" in frame.columns else np.zeros(len(frame))
    return ChannelSets(
        channels,
        tuple(sets),
        np.asarray(frame["conversions"], dtype=np.float64),
        np.asarray(value, dtype=np.float64),
    )


@dataclass(frozen=True)
class ShapleyResult:
    channels: tuple[str, ...]
    conversions: np.ndarray  # Shapley value of the conversions game, per channel
    values: np.ndarray  # Shapley value of the value game, per channel
    method: str

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {"channel": list(self.channels), "conversions": self.conversions, "value": self.values}
        )


def _shapley_coalitions(n: int, masks: np.ndarray, payoff: np.ndarray) -> np.ndarray:
    """Shapley values by enumerating all 2^n coalitions (payoff: R per exact-set mask)."""
    size = 1 << n
    v = np.zeros((size, payoff.shape[1]))
    np.add.at(v, masks, payoff)
    for i in range(n):  # zeta transform: v(S) = sum over subsets T of S of R(T)
        view = v.reshape(-1, 2, 1 << i, payoff.shape[1])
        view[:, 1] += view[:, 0]
    all_masks = np.arange(size, dtype=np.int64)
    popcount = np.zeros(size, dtype=np.int64)
    for i in range(n):
        popcount += (all_masks >> i) & 1
    weight = np.array([factorial(k) * factorial(n - k - 1) / factorial(n) for k in range(n)])
    phi = np.zeros((n, payoff.shape[1]))
    for i in range(n):
        without = all_masks[((all_masks >> i) & 1) == 0]
        marginal = v[without | (1 << i)] - v[without]
        phi[i] = weight[popcount[without]] @ marginal
    return phi


def _simplified(n: int, masks: np.ndarray, payoff: np.ndarray) -> np.ndarray:
    """phi_i = sum over channel sets T containing i of R(T) / |T| (masks of the sets)."""
    member = ((masks[:, None] >> np.arange(n)) & 1).astype(np.float64)
    size = member.sum(axis=1)
    return member.T @ (payoff / size[:, None])


def shapley(
    data: Journeys | ChannelSets,
    method: str = "auto",
    max_coalition_channels: int = MAX_COALITION_CHANNELS,
) -> ShapleyResult:
    """Exact Shapley values of every channel for conversions and for conversion value."""
    if method not in METHODS:
        raise ValueError(f"unknown Shapley method {method!r}; choose one of {METHODS}")
    channels = data.channels
    n = len(channels)
    if method == "auto":
        method = "coalitions" if n <= max_coalition_channels else "simplified"
    if method == "coalitions" and n > 25:
        raise ValueError(f"{n} channels is too many to enumerate 2^{n} coalitions")
    if n > 62:  # no bit masks: the simplified formula over explicit sets
        return _simplified_sets(data if isinstance(data, ChannelSets) else channel_sets(data))
    if isinstance(data, Journeys):
        masks, conv, val = _mask_totals(data)
    else:
        index = {c: i for i, c in enumerate(channels)}
        masks = np.array([sum(1 << index[c] for c in s) for s in data.sets], dtype=np.int64)
        conv, val = data.conversions, data.value
    payoff = np.column_stack([conv, val]).reshape(-1, 2)
    if n == 0:
        phi = np.zeros((0, 2))
    elif method == "coalitions":
        phi = _shapley_coalitions(n, masks, payoff)
    else:
        phi = _simplified(n, masks, payoff)
    log.info("shapley (%s): %d channels, %d channel sets", method, n, len(masks))
    return ShapleyResult(channels, phi[:, 0], phi[:, 1], method)


def _simplified_sets(sets: ChannelSets) -> ShapleyResult:
    index = {c: i for i, c in enumerate(sets.channels)}
    phi = np.zeros((len(sets.channels), 2))
    for s, conv, val in zip(sets.sets, sets.conversions, sets.value, strict=True):
        for c in s:
            phi[index[c]] += (conv / len(s), val / len(s))
    return ShapleyResult(sets.channels, phi[:, 0], phi[:, 1], "simplified")


def shapley_touch_credits(journeys: Journeys) -> np.ndarray:
    """Per-touch Shapley credits: even over a journey's distinct channels, then over touches."""
    if journeys.n_touches == 0:
        return np.zeros(0)
    mult, distinct = journeys.channel_multiplicity()
    return 1.0 / (mult * journeys.per_touch(distinct))


def conversion_rate_shapley(
    data: Journeys | pd.DataFrame, sep: str = ">", max_channels: int = 20
) -> pd.DataFrame:
    """Effect-oriented Shapley game: v(S) = conversion rate of the journeys whose channel set is
    a subset of S (0 when there is none), over converting AND non-converting journeys.

    Where the conversions game credits how much each channel contributed (so frequent channels
    collect much), this game credits how each channel moves the conversion rate: a channel that
    lowers it gets a negative value. Values sum to the overall conversion rate. Exact by
    enumerating the 2^n coalitions (no shortcut formula: the rate is not additive), so limited to
    `max_channels`. `data`: `Journeys`, or a frame ``channel_set`` (list or ``sep``-joined),
    ``conversions``, ``journeys`` (journeys with that exact set).
    """
    if isinstance(data, Journeys):
        channels = data.channels
        n = len(channels)
        if n > max_channels:
            raise ValueError(
                f"{n} channels: the rate game enumerates 2^n coalitions (max "
                f"{max_channels} channels)"
            )
        masks = journey_masks(data)
        conv, count = data.conversions, data.conversions + data.nulls
    else:
        sets = [
            frozenset(str(c) for c in s) if not isinstance(s, str) else frozenset(s.split(sep))
            for s in data["channel_set"]
        ]
        channels = tuple(sorted({c for s in sets for c in s}))
        n = len(channels)
        if n > max_channels:
            raise ValueError(
                f"{n} channels: the rate game enumerates 2^n coalitions (max "
                f"{max_channels} channels)"
            )
        index = {c: i for i, c in enumerate(channels)}
        masks = np.array([sum(1 << index[c] for c in s) for s in sets], dtype=np.int64)
        conv = np.asarray(data["conversions"], dtype=np.float64)
        count = np.asarray(data["journeys"], dtype=np.float64)
    if n == 0:
        return pd.DataFrame({"channel": [], "rate_contribution": []})
    space = 1 << n
    totals = np.zeros((space, 2))
    np.add.at(totals, masks, np.column_stack([conv, count]))
    for i in range(n):  # zeta transform: totals over all subsets of each coalition
        view = totals.reshape(-1, 2, 1 << i, 2)
        view[:, 1] += view[:, 0]
    rate = np.divide(totals[:, 0], totals[:, 1], out=np.zeros(space), where=totals[:, 1] > 0)
    phi = _shapley_coalitions(n, np.arange(space, dtype=np.int64), _unzeta(rate, n)[:, None])
    return pd.DataFrame({"channel": list(channels), "rate_contribution": phi[:, 0]})


def _unzeta(v: np.ndarray, n: int) -> np.ndarray:
    """Möbius transform (inverse of the subset-sum): the R(T) whose subset sums are v(S)."""
    r = v.copy()
    for i in range(n):
        view = r.reshape(-1, 2, 1 << i)
        view[:, 1] -= view[:, 0]
    return r
