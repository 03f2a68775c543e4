"""All attribution models behind one interface: per-touch credits and per-channel totals.

Rule-based models live in `assets.attribution.rules`, the data-driven ones in
`assets.attribution.markov` and `assets.attribution.shapley`. Per channel, every model credits
exactly the total conversions and the total conversion value of the journeys (up to float
rounding); per touch, every model's credits of one journey sum to 1.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from assets.attribution.journeys import Journeys
from assets.attribution.markov import MarkovResult, markov, markov_touch_credits
from assets.attribution.rules import DEFAULT_HALF_LIFE_DAYS, RULE_MODELS, time_decay
from assets.attribution.shapley import (
    conversion_rate_shapley,
    shapley,
    shapley_touch_credits,
)

log = logging.getLogger(__name__)

DATA_DRIVEN_MODELS = ("markov", "shapley")
RATE_GAME_MAX_CHANNELS = 16  # the conversion-rate Shapley game enumerates 2^n coalitions
ALL_MODELS: tuple[str, ...] = (*RULE_MODELS, *DATA_DRIVEN_MODELS)


@dataclass(frozen=True)
class Settings:
    """Model parameters (all have defaults)."""

    half_life_days: float = DEFAULT_HALF_LIFE_DAYS
    markov_order: int = 1
    shapley_method: str = "auto"


def parse_models(spec: str | Iterable[str]) -> list[str]:
    """``"all"`` or a comma-separated list of model names -> validated list, in canonical order."""
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    names = [n for n in names if n]
    if not names or names == ["all"]:
        return list(ALL_MODELS)
    unknown = [n for n in names if n not in ALL_MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from all, {', '.join(ALL_MODELS)}")
    return [m for m in ALL_MODELS if m in names]


def rule_weights(journeys: Journeys, model: str, settings: Settings | None = None) -> np.ndarray:
    settings = settings or Settings()
    if model == "time_decay":
        return time_decay(journeys, settings.half_life_days)
    return RULE_MODELS[model](journeys)


def touch_weights(
    journeys: Journeys,
    models: Iterable[str] = ALL_MODELS,
    settings: Settings | None = None,
) -> dict[str, np.ndarray]:
    """Per-touch credit arrays (sum to 1 per journey) for each model."""
    settings = settings or Settings()
    out: dict[str, np.ndarray] = {}
    for model in parse_models(list(models)):
        if model in RULE_MODELS:
            out[model] = rule_weights(journeys, model, settings)
        elif model == "markov":
            out[model] = markov_touch_credits(journeys, markov(journeys, settings.markov_order))
        else:
            out[model] = shapley_touch_credits(journeys)
    return out


def touch_credits(
    journeys: Journeys,
    models: Iterable[str] = ALL_MODELS,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Long frame: journey_id, position (0-based), channel, model, credit, conversions, value."""
    weights = touch_weights(journeys, models, settings)
    tj = journeys.touch_journey()
    ids = (
        journeys.journey_ids if journeys.journey_ids is not None else np.arange(journeys.n_journeys)
    )
    base = pd.DataFrame(
        {
            "journey_id": np.asarray(ids)[tj],
            "position": journeys.touch_rank(),
            "channel": np.asarray(journeys.channels, dtype=object)[journeys.touch_channel],
        }
    )
    frames = []
    for model, w in weights.items():
        f = base.copy()
        f["model"] = model
        f["credit"] = w
        f["conversions"] = w * journeys.conversions[tj]
        f["value"] = w * journeys.value[tj]
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


def channel_credits(
    journeys: Journeys,
    models: Iterable[str] = ALL_MODELS,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Per model and channel: credited conversions and value (each model sums to the totals).

    Columns: model, channel, conversions, value, conversion_share, value_share, and the effect
    measures (NaN elsewhere): removal_effect and odds_ratio on the Markov rows (the chain's
    conversion odds with / without the channel), rate_contribution on the Shapley rows (the
    channel's Shapley value in the conversion-rate game, up to 16 channels).
    """
    settings = settings or Settings()
    names = parse_models(list(models))
    tj = journeys.touch_journey()
    conv_t, value_t = journeys.conversions[tj], journeys.value[tj]
    n_c = journeys.n_channels
    rows: list[pd.DataFrame] = []
    for model in names:
        removal = np.full(n_c, np.nan)
        odds_ratio = np.full(n_c, np.nan)
        rate = np.full(n_c, np.nan)
        if model in RULE_MODELS:
            w = rule_weights(journeys, model, settings)
            conv = np.bincount(journeys.touch_channel, weights=w * conv_t, minlength=n_c)
            val = np.bincount(journeys.touch_channel, weights=w * value_t, minlength=n_c)
        elif model == "markov":
            result: MarkovResult = markov(journeys, settings.markov_order)
            conv, val, removal, odds_ratio = _align(journeys, result.channels, result)
        else:
            sh = shapley(journeys, settings.shapley_method)
            conv, val = sh.conversions, sh.values
            if n_c <= RATE_GAME_MAX_CHANNELS:
                rate = conversion_rate_shapley(journeys)["rate_contribution"].to_numpy()
        rows.append(
            pd.DataFrame(
                {
                    "model": model,
                    "channel": list(journeys.channels),
                    "conversions": conv,
                    "value": val,
                    "removal_effect": removal,
                    "odds_ratio": odds_ratio,
                    "rate_contribution": rate,
                }
            )
        )
    out = pd.concat(rows, ignore_index=True)
    tot_c = out.groupby("model")["conversions"].transform("sum")
    tot_v = out.groupby("model")["value"].transform("sum")
    out["conversion_share"] = np.where(tot_c > 0, out["conversions"] / tot_c.where(tot_c > 0), 0.0)
    out["value_share"] = np.where(tot_v > 0, out["value"] / tot_v.where(tot_v > 0), 0.0)
    return out[
        [
            "model",
            "channel",
            "conversions",
            "value",
            "conversion_share",
            "value_share",
            "removal_effect",
            "odds_ratio",
            "rate_contribution",
        ]
    ]


def _align(
    journeys: Journeys, channels: tuple[str, ...], result: MarkovResult
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    index = {c: i for i, c in enumerate(channels)}
    pick = np.array([index.get(c, -1) for c in journeys.channels])
    ok = pick >= 0

    def take(a: np.ndarray) -> np.ndarray:
        return np.where(ok, a[np.maximum(pick, 0)], 0.0)

    return (
        take(result.conversions),
        take(result.values),
        take(result.removal_effects),
        np.where(ok, result.odds_ratio[np.maximum(pick, 0)], np.nan),
    )
