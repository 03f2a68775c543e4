"""On the simulator's lead journeys the effect measures rank channels like the planted truth.

`sandbox.marketing` plants channel effects as odds ratios of a channel's presence on lead
conversion (`truth["channel_effects"]`, ranked in `truth["channel_ranking"]`), independent of how
popular each channel is. The Markov odds ratio and the conversion-rate Shapley game measure that
effect; the contribution measures (removal effect, conversions Shapley) deliberately do not:
they credit popular channels, which this test also pins down.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from assets.attribution.journeys import from_touches
from assets.attribution.markov import markov
from assets.attribution.shapley import conversion_rate_shapley, journey_masks, shapley
from sandbox.marketing import generate_marketing
from sandbox.org import generate


@pytest.fixture(scope="module")
def lead_journeys():
    org = generate("small", seed=42, end="2026-06-01")
    touches = generate_marketing(org)["touchpoints"].to_pandas()
    touches["email_key"] = touches.email.str.strip().str.lower()
    leads = org.tables["Lead"].to_pandas()
    leads = leads[~leads.IsDeleted & leads.Email.notna()]
    leads = leads.assign(email_key=leads.Email.str.strip().str.lower())
    leads = leads.drop_duplicates("email_key")  # planted duplicates reuse an email
    rows = touches.merge(leads[["Id", "email_key", "IsConverted"]], on="email_key")
    rows["occurred_at"] = pd.to_datetime(rows.occurred_at, utc=True, format="ISO8601")
    journeys = from_touches(
        rows.assign(converted=rows.IsConverted.astype(int)),
        journey_col="Id",
        order_col="occurred_at",
    )
    return journeys, org.truth


def rank_correlation(channels, scores, truth_ranking) -> float:
    score = dict(zip(channels, scores, strict=True))
    return spearmanr(
        [score[c] for c in truth_ranking], np.arange(len(truth_ranking), 0, -1)
    ).statistic


def ranked(channels, scores) -> list[str]:
    return [c for _, c in sorted(zip(scores, channels, strict=True), reverse=True)]


def test_markov_odds_ratio_ranks_channels_by_true_effect(lead_journeys):
    journeys, truth = lead_journeys
    truth_rank = truth["channel_ranking"]
    assert journeys.n_journeys > 5000 and set(journeys.channels) == set(truth_rank)
    result = markov(journeys)
    order = ranked(result.channels, result.odds_ratio)
    assert rank_correlation(result.channels, result.odds_ratio, truth_rank) >= 0.9
    assert truth_rank[0] in order[:2]
    assert truth_rank[-1] in order[-2:]
    # channels planted as harmful (odds ratio < 1) come out below 1
    for ch, effect in truth["channel_effects"].items():
        if effect["lead_to_opportunity_odds_ratio"] < 0.9:
            assert result.odds_ratio[result.channels.index(ch)] < 1


def test_conversion_rate_shapley_ranks_channels_by_true_effect(lead_journeys):
    journeys, truth = lead_journeys
    truth_rank = truth["channel_ranking"]
    game = conversion_rate_shapley(journeys)
    order = ranked(list(game.channel), game.rate_contribution.to_numpy())
    assert rank_correlation(list(game.channel), game.rate_contribution, truth_rank) >= 0.8
    assert truth_rank[0] in order[:3]
    assert truth_rank[-1] in order[-2:]


def test_contribution_measures_follow_popularity_not_effect(lead_journeys):
    journeys, truth = lead_journeys
    masks = journey_masks(journeys)
    converting = journeys.conversions > 0
    presence = np.array([((masks[converting] >> k) & 1).sum() for k in range(journeys.n_channels)])
    removal = markov(journeys).removal_effects
    credits = shapley(journeys).conversions
    assert spearmanr(removal, presence).statistic > 0.8
    assert spearmanr(credits, presence).statistic > 0.8
    # ... which is why they are not the effect ranking
    assert rank_correlation(journeys.channels, removal, truth["channel_ranking"]) < 0.5
