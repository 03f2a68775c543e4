"""Exact Markov removal effects against an independent absorbing-chain computation."""

from __future__ import annotations

import numpy as np
import pytest

from assets.attribution import markov as markov_mod
from assets.attribution.journeys import from_paths
from assets.attribution.markov import (
    chain_from_journeys,
    chain_from_transitions,
    markov,
    markov_touch_credits,
    removal_effects,
)


def random_paths(seed: int, n: int = 300, channels: str = "abcde", max_len: int = 6):
    rng = np.random.default_rng(seed)
    paths, conv, nulls, value = [], [], [], []
    for _ in range(n):
        length = int(rng.integers(1, max_len + 1))
        path = [channels[int(k)] for k in rng.integers(0, len(channels), length)]
        converted = rng.random() < 0.2 + 0.15 * path.count("a")
        paths.append(path)
        conv.append(1.0 if converted else 0.0)
        nulls.append(0.0 if converted else 1.0)
        value.append(float(rng.integers(10, 1000)) if converted else 0.0)
    return paths, conv, nulls, value


def independent_markov(paths, conv, nulls, value, order):
    """Plain-Python chain with explicit absorbing states; removal redirects edges to null.

    States are tuples of the last `order` channels; P(conversion) and E[value] come from the
    fundamental matrix N = inv(I - Q) of the full transient block (start included).
    """
    counts: dict[tuple, dict[tuple, float]] = {}
    conv_value: dict[tuple, float] = {}

    def add(a, b, w):
        counts.setdefault(a, {})
        counts[a][b] = counts[a].get(b, 0.0) + w

    for path, c, nl, v in zip(paths, conv, nulls, value, strict=True):
        prev = ("START",)
        for i in range(len(path)):
            state = tuple(path[max(0, i - order + 1) : i + 1])
            add(prev, state, c + nl)
            prev = state
        if c:
            add(prev, ("CONV",), c)
            conv_value[prev] = conv_value.get(prev, 0.0) + v
        if nl:
            add(prev, ("NULL",), nl)
    transient = sorted(counts, key=str)

    def solve(removed: str | None):
        idx = {s: i for i, s in enumerate(transient)}
        q = np.zeros((len(transient), len(transient)))
        r = np.zeros(len(transient))
        rv = np.zeros(len(transient))
        for s, outs in counts.items():
            total = sum(outs.values())
            if removed is not None and removed in s:
                continue  # a removed state is absorbing "null": no way on
            for t, w in outs.items():
                if t == ("CONV",):
                    r[idx[s]] += w / total
                    rv[idx[s]] += conv_value.get(s, 0.0) / total
                elif t == ("NULL",):
                    pass
                else:
                    q[idx[s], idx[t]] += w / total  # into a removed state: it goes nowhere
        fundamental = np.linalg.inv(np.eye(len(transient)) - q)
        start = idx[("START",)]
        return float((fundamental @ r)[start]), float((fundamental @ rv)[start])

    p, ev = solve(None)
    channels = sorted({c for p_ in paths for c in p_})
    re = {c: 1 - solve(c)[0] / p for c in channels}
    vre = {c: 1 - solve(c)[1] / ev for c in channels}
    return p, ev, re, vre


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("seed", [1, 2])
def test_removal_effects_match_independent_solution(order, seed):
    paths, conv, nulls, value = random_paths(seed)
    result = markov(from_paths(paths, conv, nulls, value), order=order)
    p, ev, re, vre = independent_markov(paths, conv, nulls, value, order)
    assert result.conversion_probability == pytest.approx(p, abs=1e-12)
    assert result.expected_value == pytest.approx(ev, rel=1e-12)
    for k, channel in enumerate(result.channels):
        assert abs(result.removal_effects[k] - re[channel]) < 1e-9
        assert abs(result.value_removal_effects[k] - vre[channel]) < 1e-9
    # normalised credits add up to the totals
    assert result.conversions.sum() == pytest.approx(sum(conv), rel=1e-12)
    assert result.values.sum() == pytest.approx(sum(value), rel=1e-12)


def test_hand_computed_chain():
    # email -> paid_search converts (100); email alone does not; email -> display converts (30)
    j = from_paths(
        [["email", "paid_search"], ["email"], ["email", "display"]],
        conversions=[1, 0, 1],
        nulls=[0, 1, 0],
        value=[100, 0, 30],
    )
    r = markov(j)
    assert r.channels == ("display", "email", "paid_search")
    assert r.conversion_probability == pytest.approx(2 / 3)
    # without email nothing converts; without paid_search / display one path of three is lost
    np.testing.assert_allclose(r.removal_effects, [0.5, 1.0, 0.5], atol=1e-12)
    np.testing.assert_allclose(r.conversions, [0.5, 1.0, 0.5], atol=1e-12)
    # E[value] = (100 + 30) / 3; without display 100/3, without paid_search 30/3, without email 0
    np.testing.assert_allclose(r.value_removal_effects, [30 / 130, 1.0, 100 / 130], atol=1e-12)
    np.testing.assert_allclose(r.values, [15.0, 65.0, 50.0], atol=1e-9)


def test_self_loops_do_not_change_order_one_effects():
    a = from_paths([["x", "x", "y"], ["y", "y"], ["x"]], [1, 0, 1], [0, 1, 1])
    b = from_paths([["x", "y"], ["y"], ["x"]], [1, 0, 1], [0, 1, 1])
    np.testing.assert_allclose(markov(a).removal_effects, markov(b).removal_effects, atol=1e-12)


def test_transition_frame_round_trip_gives_same_result():
    paths, conv, nulls, value = random_paths(7)
    j = from_paths(paths, conv, nulls, value)
    for order in (1, 2):
        chain = chain_from_journeys(j, order)
        again = chain_from_transitions(chain.frame())
        a, b = removal_effects(chain), removal_effects(again)
        assert a.channels == b.channels
        np.testing.assert_allclose(a.removal_effects, b.removal_effects, atol=1e-12)
        np.testing.assert_allclose(a.value_removal_effects, b.value_removal_effects, atol=1e-12)


def test_sparse_solver_matches_dense(monkeypatch):
    paths, conv, nulls, value = random_paths(3, n=400, channels="abcdefg")
    j = from_paths(paths, conv, nulls, value)
    dense = markov(j, order=3)
    monkeypatch.setattr(markov_mod, "_DENSE_LIMIT", 5)
    sparse = markov(j, order=3)
    np.testing.assert_allclose(dense.removal_effects, sparse.removal_effects, atol=1e-10)
    assert dense.conversion_probability == pytest.approx(sparse.conversion_probability, abs=1e-12)


def test_touch_credits_follow_removal_effects():
    j = from_paths(
        [["email", "paid_search", "email"], ["email"], ["email", "display"]],
        conversions=[1, 0, 1],
        nulls=[0, 1, 0],
    )
    r = markov(j)
    re = dict(zip(r.channels, r.removal_effects, strict=True))
    credits = markov_touch_credits(j, r)
    share_email = re["email"] / (re["email"] + re["paid_search"])
    # journey 1: email's share split over its two touches
    np.testing.assert_allclose(
        credits[:3], [share_email / 2, 1 - share_email, share_email / 2], atol=1e-12
    )
    assert credits[3] == pytest.approx(1.0)
    assert credits[4:].sum() == pytest.approx(1.0)


def test_no_conversions_gives_zero_effects():
    r = markov(from_paths([["a", "b"], ["b"]], [0, 0], [1, 1]))
    assert r.conversion_probability == 0.0
    assert not r.removal_effects.any()
    assert not r.conversions.any()


def test_order_must_be_positive():
    with pytest.raises(ValueError, match="order"):
        chain_from_journeys(from_paths([["a"]], [1]), order=0)


def independent_visit_probability(paths, conv, nulls, order, channel):
    """P(the chain ever enters a state containing `channel`), by the fundamental matrix with
    those states made absorbing."""
    counts: dict[tuple, dict[tuple, float]] = {}
    for path, c, nl in zip(paths, conv, nulls, strict=True):
        prev = ("START",)
        for i in range(len(path)):
            state = tuple(path[max(0, i - order + 1) : i + 1])
            counts.setdefault(prev, {})
            counts[prev][state] = counts[prev].get(state, 0.0) + c + nl
            prev = state
        counts.setdefault(prev, {})
        counts[prev][("END",)] = counts[prev].get(("END",), 0.0) + c + nl
    transient = [s for s in counts if channel not in s]
    idx = {s: i for i, s in enumerate(transient)}
    q = np.zeros((len(transient), len(transient)))
    hit = np.zeros(len(transient))
    for s in transient:
        total = sum(counts[s].values())
        for t, w in counts[s].items():
            if channel in t:
                hit[idx[s]] += w / total
            elif t in idx:
                q[idx[s], idx[t]] += w / total
    return float((np.linalg.inv(np.eye(len(transient)) - q) @ hit)[idx[("START",)]])


@pytest.mark.parametrize("order", [1, 2])
def test_visit_probability_matches_independent_solution(order):
    paths, conv, nulls, value = random_paths(5, n=200)
    r = markov(from_paths(paths, conv, nulls, value), order=order)
    for k, channel in enumerate(r.channels):
        want = independent_visit_probability(paths, conv, nulls, order, channel)
        assert abs(r.visit_probability[k] - want) < 1e-9
    # P(convert and visit) + P(convert and never visit) = P(convert)
    p_without = r.conversion_probability - r.visit_and_convert
    assert (p_without >= -1e-12).all()
    np.testing.assert_allclose(
        r.conversion_rate_with * r.visit_probability
        + r.conversion_rate_without * (1 - r.visit_probability),
        r.conversion_probability,
        atol=1e-12,
    )


def test_lift_equals_empirical_rates_when_the_chain_is_exact():
    # one-touch journeys: the order-1 chain reproduces the data exactly
    rng = np.random.default_rng(2)
    channels = rng.choice(list("abcd"), size=400)
    p = {"a": 0.5, "b": 0.2, "c": 0.1, "d": 0.3}
    conv = (rng.random(400) < np.array([p[c] for c in channels])).astype(float)
    r = markov(from_paths([[c] for c in channels], conv, 1 - conv))
    for k, ch in enumerate(r.channels):
        inside = channels == ch
        rate_in, rate_out = conv[inside].mean(), conv[~inside].mean()
        assert r.visit_probability[k] == pytest.approx(inside.mean(), abs=1e-12)
        assert r.conversion_rate_with[k] == pytest.approx(rate_in, abs=1e-12)
        assert r.conversion_rate_without[k] == pytest.approx(rate_out, abs=1e-12)
        odds = (rate_in / (1 - rate_in)) / (rate_out / (1 - rate_out))
        assert r.odds_ratio[k] == pytest.approx(odds, rel=1e-10)
