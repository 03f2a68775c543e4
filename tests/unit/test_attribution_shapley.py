"""Shapley attribution against brute-force enumeration of channel orderings."""

from __future__ import annotations

from itertools import permutations

import numpy as np
import pandas as pd
import pytest

from assets.attribution.journeys import from_paths
from assets.attribution.shapley import (
    channel_sets,
    channel_sets_from_frame,
    conversion_rate_shapley,
    shapley,
    shapley_touch_credits,
)


def random_journeys(seed: int, channels: str, n: int = 200):
    rng = np.random.default_rng(seed)
    paths, conv, value = [], [], []
    for _ in range(n):
        length = int(rng.integers(1, 5))
        paths.append([channels[int(k)] for k in rng.integers(0, len(channels), length)])
        converted = rng.random() < 0.4
        conv.append(1.0 if converted else 0.0)
        value.append(float(rng.integers(1, 500)) if converted else 0.0)
    return paths, conv, [1 - c for c in conv], value


def brute_force(paths, payoff):
    """Average marginal contribution over every ordering of the channels (n! orderings)."""
    channels = sorted({c for p in paths for c in p})

    def v(coalition: set) -> float:
        return sum(w for p, w in zip(paths, payoff, strict=True) if set(p) <= coalition)

    phi = dict.fromkeys(channels, 0.0)
    orderings = list(permutations(channels))
    for order in orderings:
        members: set = set()
        for c in order:
            before = v(members)
            members.add(c)
            phi[c] += v(members) - before
    return {c: x / len(orderings) for c, x in phi.items()}


@pytest.mark.parametrize("method", ["coalitions", "simplified"])
@pytest.mark.parametrize(("seed", "channels"), [(1, "abc"), (2, "abcd"), (3, "abcde")])
def test_matches_brute_force(method, seed, channels):
    paths, conv, nulls, value = random_journeys(seed, channels)
    result = shapley(from_paths(paths, conv, nulls, value), method=method)
    want_conv = brute_force(paths, conv)
    want_value = brute_force(paths, value)
    for k, c in enumerate(result.channels):
        assert abs(result.conversions[k] - want_conv[c]) < 1e-9
        assert abs(result.values[k] - want_value[c]) < 1e-9
    # efficiency: the values add up to v(all channels) = every conversion / all value
    assert result.conversions.sum() == pytest.approx(sum(conv), rel=1e-12)
    assert result.values.sum() == pytest.approx(sum(value), rel=1e-12)


def test_hand_computed_game():
    # {a}: 2 conversions, {a, b}: 1 conversion, {b}: non-converting
    j = from_paths([["a"], ["a"], ["b", "a", "b"], ["b"]], [1, 1, 1, 0], [0, 0, 0, 1])
    r = shapley(j)
    # v(a)=2, v(b)=0, v(ab)=3: phi_a = (2 + 3)/2 = 2.5, phi_b = (0 + 1)/2 = 0.5
    np.testing.assert_allclose(r.conversions, [2.5, 0.5], atol=1e-12)


def test_auto_switches_to_simplified_past_the_limit_and_agrees():
    channels = [f"c{i:02d}" for i in range(18)]
    rng = np.random.default_rng(5)
    paths = [list(rng.choice(channels, size=int(rng.integers(1, 5)))) for _ in range(400)]
    conv = (rng.random(400) < 0.5).astype(float)
    j = from_paths(paths, conv, 1 - conv, conv * 10)
    auto = shapley(j)
    assert auto.method == "simplified"
    full = shapley(j, method="coalitions")  # 2^18 coalitions: still exact, just slower
    np.testing.assert_allclose(auto.conversions, full.conversions, atol=1e-9)
    np.testing.assert_allclose(auto.values, full.values, atol=1e-9)


def test_channel_set_frame_round_trip():
    paths, conv, nulls, value = random_journeys(9, "abcd")
    j = from_paths(paths, conv, nulls, value)
    sets = channel_sets(j)
    frame_input = {
        "channel_set": [">".join(sorted(s)) for s in sets.sets],
        "conversions": sets.conversions,
        "value": sets.value,
    }
    again = shapley(channel_sets_from_frame(pd.DataFrame(frame_input)))
    direct = shapley(j)
    np.testing.assert_allclose(again.conversions, direct.conversions, atol=1e-12)


def test_deterministic_under_reordering():
    paths, conv, nulls, value = random_journeys(4, "abcde")
    perm = np.random.default_rng(0).permutation(len(paths))
    a = shapley(from_paths(paths, conv, nulls, value))
    b = shapley(
        from_paths(
            [paths[i] for i in perm],
            [conv[i] for i in perm],
            [nulls[i] for i in perm],
            [value[i] for i in perm],
        )
    )
    assert a.channels == b.channels
    np.testing.assert_allclose(a.conversions, b.conversions, atol=1e-12)
    assert shapley(from_paths(paths, conv, nulls, value)).conversions.tobytes() == (
        a.conversions.tobytes()
    )


def test_touch_credits_even_over_distinct_channels():
    j = from_paths([["a", "b", "a"], ["c"]], [1, 1], [0, 0])
    np.testing.assert_allclose(shapley_touch_credits(j), [0.25, 0.5, 0.25, 1.0], atol=1e-15)


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown Shapley method"):
        shapley(from_paths([["a"]], [1]), method="sampled")


def test_more_channels_than_bit_masks_use_explicit_sets():
    channels = [f"c{i:02d}" for i in range(70)]
    rng = np.random.default_rng(8)
    paths = [list(rng.choice(channels, size=int(rng.integers(1, 6)))) for _ in range(300)]
    conv = (rng.random(300) < 0.5).astype(float)
    result = shapley(from_paths(paths, conv, 1 - conv, conv * 3))
    assert result.method == "simplified"
    want = dict.fromkeys(channels, 0.0)
    for p, c in zip(paths, conv, strict=True):
        for ch in set(p):
            want[ch] += c / len(set(p))
    for k, ch in enumerate(result.channels):
        assert abs(result.conversions[k] - want[ch]) < 1e-9
        assert abs(result.values[k] - 3 * want[ch]) < 1e-9
    assert result.conversions.sum() == pytest.approx(conv.sum())


def brute_force_rate(paths, conv):
    channels = sorted({c for p in paths for c in p})

    def v(coalition: set) -> float:
        inside = [c for p, c in zip(paths, conv, strict=True) if set(p) <= coalition]
        return sum(inside) / len(inside) if inside else 0.0

    phi = dict.fromkeys(channels, 0.0)
    orderings = list(permutations(channels))
    for order in orderings:
        members: set = set()
        for c in order:
            before = v(members)
            members.add(c)
            phi[c] += v(members) - before
    return {c: x / len(orderings) for c, x in phi.items()}


@pytest.mark.parametrize(("seed", "channels"), [(21, "abc"), (22, "abcde")])
def test_conversion_rate_game_matches_brute_force(seed, channels):
    paths, conv, nulls, _ = random_journeys(seed, channels, n=120)
    got = conversion_rate_shapley(from_paths(paths, conv, nulls)).set_index("channel")
    want = brute_force_rate(paths, conv)
    for c, x in want.items():
        assert abs(got.loc[c, "rate_contribution"] - x) < 1e-12
    # efficiency: the contributions add up to the overall conversion rate
    assert got.rate_contribution.sum() == pytest.approx(sum(conv) / len(conv), abs=1e-12)
    # same game from the aggregated frame (as built in SQL)
    frame = pd.DataFrame(
        {
            "channel_set": [sorted(set(p)) for p in paths],
            "conversions": conv,
            "journeys": [1.0] * len(paths),
        }
    )
    again = conversion_rate_shapley(frame).set_index("channel")
    np.testing.assert_allclose(again.rate_contribution, got.rate_contribution, atol=1e-12)


def test_conversion_rate_game_penalises_a_channel_that_lowers_the_rate():
    # "x" journeys never convert, "y" journeys always do; together half of them do
    paths = [["x"]] * 4 + [["y"]] * 4 + [["x", "y"]] * 2
    conv = [0] * 4 + [1] * 4 + [1, 0]
    got = conversion_rate_shapley(from_paths(paths, conv, [1 - c for c in conv]))
    contribution = dict(zip(got.channel, got.rate_contribution, strict=True))
    assert contribution["y"] > 0 > contribution["x"]
