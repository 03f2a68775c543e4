"""Rule-based models against hand computations; every model's credits sum to 1 per journey."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from assets.attribution.journeys import from_paths, from_touches
from assets.attribution.models import (
    ALL_MODELS,
    Settings,
    channel_credits,
    parse_models,
    touch_credits,
    touch_weights,
)
from assets.attribution.rules import (
    first_touch,
    last_touch,
    linear,
    time_decay,
    u_shaped,
    w_shaped,
)

# journeys of 1, 2, 3 and 5 touches
SMALL = from_paths([["a"], ["a", "b"], ["a", "b", "c"], ["a", "b", "c", "d", "e"]], [1, 1, 1, 1])


def split(weights: np.ndarray) -> list[list[float]]:
    return [list(weights[s:e]) for s, e in zip(SMALL.offsets[:-1], SMALL.offsets[1:], strict=True)]


def test_first_last_linear():
    assert split(first_touch(SMALL)) == [[1], [1, 0], [1, 0, 0], [1, 0, 0, 0, 0]]
    assert split(last_touch(SMALL)) == [[1], [0, 1], [0, 0, 1], [0, 0, 0, 0, 1]]
    np.testing.assert_allclose(
        linear(SMALL), [1, 1 / 2, 1 / 2, 1 / 3, 1 / 3, 1 / 3, 0.2, 0.2, 0.2, 0.2, 0.2]
    )


def test_u_shaped_including_degenerate_lengths():
    np.testing.assert_allclose(
        u_shaped(SMALL),
        [1.0, 0.5, 0.5, 0.4, 0.2, 0.4, 0.4, 0.2 / 3, 0.2 / 3, 0.2 / 3, 0.4],
        atol=1e-15,
    )


def test_w_shaped_without_markers_uses_first_and_last():
    # lead creation -> first touch (60 % with first touch), opportunity creation -> last touch
    np.testing.assert_allclose(
        w_shaped(SMALL),
        [1.0, 2 / 3, 1 / 3, 0.6, 0.1, 0.3, 0.6, 0.1 / 3, 0.1 / 3, 0.1 / 3, 0.3],
        atol=1e-15,
    )


def w_journey(lead: int | None, opp: int | None, n: int) -> np.ndarray:
    df = pd.DataFrame(
        {
            "journey_id": ["j"] * n,
            "position": range(n),
            "channel": [f"c{i}" for i in range(n)],
            "converted": [1] * n,
            "lc": [i == lead for i in range(n)],
            "oc": [i == opp for i in range(n)],
        }
    )
    return w_shaped(from_touches(df, lead_creation_col="lc", opp_creation_col="oc"))


@pytest.mark.parametrize(
    ("lead", "opp", "n", "want"),
    [
        (1, 3, 5, [0.3, 0.3, 0.05, 0.3, 0.05]),  # textbook: three roles + 10 % over two others
        (1, 2, 3, [1 / 3, 1 / 3, 1 / 3]),  # no other touch: the roles share 100 %
        (0, 2, 4, [0.6, 0.05, 0.3, 0.05]),  # first = lead creation
        (2, 2, 4, [0.3, 0.05, 0.6, 0.05]),  # lead creation = opportunity creation
        (0, 0, 3, [0.9, 0.05, 0.05]),  # all three roles on the first touch
        (0, 0, 1, [1.0]),
        (1, 1, 2, [1 / 3, 2 / 3]),  # 0.3 / 0.6 rescaled by 1 / 0.9
        (None, 1, 4, [0.6, 0.3, 0.05, 0.05]),  # no lead marker -> first touch
    ],
)
def test_w_shaped_with_markers(lead, opp, n, want):
    np.testing.assert_allclose(w_journey(lead, opp, n), want, atol=1e-15)


def test_time_decay_by_days_relative_to_conversion():
    df = pd.DataFrame(
        {
            "journey_id": ["j", "j", "j", "k", "k"],
            "position": [1, 2, 3, 1, 2],
            "channel": ["a", "b", "c", "a", "b"],
            "converted": [1, 1, 1, 0, 0],
            "t": pd.to_datetime(
                ["2026-01-01", "2026-01-08", "2026-01-15", "2026-01-01", "2026-03-01"], utc=True
            ),
            "ref": pd.to_datetime(["2026-01-29"] * 3 + ["2026-02-01"] * 2, utc=True),
        }
    )
    j = from_touches(df, time_col="t", reference_time_col="ref")
    w = time_decay(j, half_life_days=7)
    # ages 28, 21, 14 days -> 1/16, 1/8, 1/4 ; normalised
    raw = np.array([1 / 16, 1 / 8, 1 / 4])
    np.testing.assert_allclose(w[:3], raw / raw.sum(), atol=1e-15)
    # touch after the reference time counts as age 0: ages 31 and 0
    raw_k = np.array([2 ** (-31 / 7), 1.0])
    np.testing.assert_allclose(w[3:], raw_k / raw_k.sum(), atol=1e-15)


def test_time_decay_without_times_counts_touches_and_never_underflows():
    w = time_decay(SMALL, half_life_days=1)
    np.testing.assert_allclose(w[3:6], np.array([0.25, 0.5, 1]) / 1.75, atol=1e-15)
    df = pd.DataFrame(
        {
            "journey_id": ["j", "j"],
            "position": [1, 2],
            "channel": ["a", "b"],
            "converted": [1, 1],
            "t": pd.to_datetime(["1900-01-01", "1950-01-01"], utc=True),
            "ref": pd.to_datetime(["2026-01-01"] * 2, utc=True),
        }
    )
    w = time_decay(from_touches(df, time_col="t", reference_time_col="ref"), half_life_days=1)
    np.testing.assert_allclose(w, [0.0, 1.0], atol=1e-300)
    with pytest.raises(ValueError, match="half_life"):
        time_decay(SMALL, half_life_days=0)


def random_journeys(seed: int):
    rng = np.random.default_rng(seed)
    n = 400
    lengths = rng.integers(1, 9, n)
    rows = []
    for j, length in enumerate(lengths):
        converted = int(rng.random() < 0.35)
        value = float(rng.integers(100, 10_000)) if converted else 0.0
        days = np.sort(rng.uniform(0, 400, length))
        lead = int(rng.integers(0, length)) if rng.random() < 0.8 else -1
        opp = int(rng.integers(0, length)) if rng.random() < 0.8 else -1
        for i in range(length):
            rows.append(
                {
                    "journey_id": f"j{j}",
                    "position": i,
                    "channel": f"ch{int(rng.integers(0, 7))}",
                    "converted": converted,
                    "value": value,
                    "t": pd.Timestamp("2025-01-01", tz="UTC") + pd.Timedelta(days=float(days[i])),
                    "lc": i == lead,
                    "oc": i == opp,
                }
            )
    df = pd.DataFrame(rows).sample(frac=1.0, random_state=seed)  # shuffled input rows
    return from_touches(df, time_col="t", lead_creation_col="lc", opp_creation_col="oc")


@pytest.mark.parametrize("seed", [11, 12, 13])
@pytest.mark.parametrize("order", [1, 2])
def test_every_model_credits_sum_to_one_per_journey(seed, order):
    j = random_journeys(seed)
    settings = Settings(half_life_days=30, markov_order=order)
    weights = touch_weights(j, ALL_MODELS, settings)
    assert set(weights) == set(ALL_MODELS)
    for model, w in weights.items():
        assert len(w) == j.n_touches, model
        assert (w >= 0).all(), model
        np.testing.assert_allclose(j.journey_sum(w), 1.0, rtol=0, atol=1e-12, err_msg=model)
    credits = channel_credits(j, ALL_MODELS, settings)
    totals = credits.groupby("model")[["conversions", "value"]].sum()
    np.testing.assert_allclose(totals["conversions"], j.total_conversions, rtol=1e-12)
    np.testing.assert_allclose(totals["value"], j.total_value, rtol=1e-12)


def test_touch_credits_frame_and_ordering():
    df = pd.DataFrame(
        {
            "journey_id": ["x", "y", "x"],
            "position": [2, 1, 1],
            "channel": ["b", "c", "a"],
            "converted": [1, 0, 1],
            "value": [50.0, 0.0, 50.0],
        }
    )
    tc = touch_credits(from_touches(df), ["first_touch", "linear"])
    first = tc[tc.model == "first_touch"].set_index(["journey_id", "channel"])
    assert first.loc[("x", "a"), "credit"] == 1.0  # position 1 comes first whatever the row order
    assert first.loc[("x", "b"), "credit"] == 0.0
    assert first.loc[("x", "a"), "value"] == 50.0
    lin = tc[tc.model == "linear"]
    assert lin.groupby("journey_id")["credit"].sum().tolist() == [1.0, 1.0]


def test_parse_models():
    assert parse_models("all") == list(ALL_MODELS)
    assert parse_models("shapley, markov") == ["markov", "shapley"]
    with pytest.raises(ValueError, match="unknown model"):
        parse_models("markov,bogus")
