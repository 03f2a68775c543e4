"""Rule-based attribution: per-touch weights that sum to 1 inside every journey.

All functions take `Journeys` and return a float64 array with one weight per touch (in the
journeys' touch order). Vectorised over all touches; no loop per journey.

Degenerate cases (documented in docs/ATTRIBUTION.md):

- position-based (U): 1 touch -> 100 %; 2 touches -> 50/50; n >= 3 -> 40 % first, 40 % last,
  20 % split evenly over the n - 2 middle touches.
- W-shaped: 30 % each to the first touch, the lead-creation touch and the opportunity-creation
  touch; 10 % split evenly over the other touches. Roles that fall on the same touch add up on
  it (first = lead creation -> 60 % there). When no touch is left outside the roles, the role
  shares are rescaled to sum to 100 % (divided by 0.9): 1 touch -> 100 %; 2 touches with
  first = lead creation -> 2/3 and 1/3; 3 distinct role touches -> 1/3 each. A journey without a
  flagged lead-creation touch uses its first touch; without a flagged opportunity-creation touch
  its last touch; several flags -> the earliest flagged touch.
- time decay: weight 2^(-age / half_life) with age = reference time (conversion / close, default
  the journey's last touch) minus touch time, in days, clamped at 0 for touches after the
  reference. Without touch times the age is counted in touches before the last one (half-life
  in touches). Weights are computed relative to the journey's youngest touch, so they never
  underflow to an all-zero journey.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from assets.attribution.journeys import Journeys

DEFAULT_HALF_LIFE_DAYS = 7.0


def first_touch(journeys: Journeys) -> np.ndarray:
    return (journeys.touch_rank() == 0).astype(np.float64)


def last_touch(journeys: Journeys) -> np.ndarray:
    n = journeys.per_touch(journeys.lengths())
    return (journeys.touch_rank() == n - 1).astype(np.float64)


def linear(journeys: Journeys) -> np.ndarray:
    return 1.0 / journeys.per_touch(journeys.lengths()).astype(np.float64)


def u_shaped(journeys: Journeys) -> np.ndarray:
    """Position-based: 40 % first, 40 % last, 20 % over the middle; 1 -> 100 %, 2 -> 50/50."""
    n = journeys.per_touch(journeys.lengths())
    r = journeys.touch_rank()
    ends = (r == 0) | (r == n - 1)
    middle_share = np.divide(0.2, n - 2, out=np.zeros(len(n)), where=n > 2)
    w = np.where(ends, 0.4, middle_share)
    w = np.where(n == 2, 0.5, w)
    return np.where(n == 1, 1.0, w)


def _role_touch(journeys: Journeys, flags: np.ndarray | None, default: np.ndarray) -> np.ndarray:
    """Index of each journey's earliest flagged touch, or `default` where none is flagged."""
    if flags is None or not flags.any():
        return default
    idx = np.arange(journeys.n_touches, dtype=np.int64)
    big = np.iinfo(np.int64).max
    earliest = np.minimum.reduceat(np.where(flags, idx, big), journeys.offsets[:-1])
    return np.where(earliest == big, default, earliest)


def w_shaped(journeys: Journeys) -> np.ndarray:
    """30/30/30 on first / lead-creation / opportunity-creation touch, 10 % over the rest."""
    starts = journeys.offsets[:-1]
    lasts = journeys.offsets[1:] - 1
    roles = [
        starts,
        _role_touch(journeys, journeys.lead_creation, starts),
        _role_touch(journeys, journeys.opp_creation, lasts),
    ]
    w = np.zeros(journeys.n_touches)
    for role in roles:
        np.add.at(w, role, 0.3)
    is_role = w > 0
    n_rest = journeys.lengths() - journeys.journey_sum(is_role.astype(np.int64))
    n_rest_t = journeys.per_touch(n_rest)
    rest_share = np.divide(0.1, n_rest_t, out=np.zeros(len(w)), where=n_rest_t > 0)
    w = np.where(is_role, w, rest_share)
    # No touch outside the roles: the roles share 100 % in proportion (0.9 -> 1).
    return np.where(n_rest_t == 0, w / 0.9, w)


def time_decay(journeys: Journeys, half_life_days: float = DEFAULT_HALF_LIFE_DAYS) -> np.ndarray:
    """Exponential decay with the given half-life (days; touches when no touch times)."""
    if not half_life_days > 0:
        raise ValueError(f"half_life_days must be > 0, got {half_life_days}")
    if journeys.n_touches == 0:
        return np.zeros(0)
    if journeys.touch_time is None:
        n = journeys.per_touch(journeys.lengths())
        age = (n - 1 - journeys.touch_rank()).astype(np.float64)
    else:
        t = journeys.touch_time
        if np.isnan(t).any():
            raise ValueError("time decay needs a time on every touch")
        ref = np.maximum.reduceat(t, journeys.offsets[:-1])
        if journeys.reference_time is not None:
            ref = np.where(np.isnan(journeys.reference_time), ref, journeys.reference_time)
        age = np.maximum(journeys.per_touch(ref) - t, 0.0)
    youngest = np.minimum.reduceat(age, journeys.offsets[:-1])
    w = np.exp2(-(age - journeys.per_touch(youngest)) / half_life_days)
    return w / journeys.per_touch(journeys.journey_sum(w))


RULE_MODELS: dict[str, Callable[..., np.ndarray]] = {
    "first_touch": first_touch,
    "last_touch": last_touch,
    "linear": linear,
    "time_decay": time_decay,
    "u_shaped": u_shaped,
    "w_shaped": w_shaped,
}
