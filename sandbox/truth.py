"""The planted truth of the demo org: every parameter the simulator draws from.

`sandbox.org` samples the org from these numbers and records them (plus what can be derived from
them exactly, such as the noiseless bookings curve) in `truth.json`, so analytics built on the
org can be checked against what was planted rather than against themselves.

Times are float days since the Unix epoch (UTC); days are integer days since the epoch.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from functools import cache

import numpy as np

from sandbox.schema import OPEN_STAGES, SEGMENTS

EPOCH = date(1970, 1, 1)

# --- company shape --------------------------------------------------------------------------
SEGMENT_MIX = {"SMB": 0.50, "Mid-Market": 0.33, "Enterprise": 0.17}
REGION_MIX = {"NA": 0.50, "EMEA": 0.30, "APAC": 0.20}
WARMUP_YEARS = 0.5  # history before `end - years` so the pipeline is in steady state at start

# --- opportunity funnel (by segment) ---------------------------------------------------------
# Probability of advancing from open stage i to the next one; the last entry is
# Negotiation -> Closed Won. A deal that does not advance is Closed Lost from that stage.
STAGE_ADVANCE = {
    "SMB": [0.72, 0.78, 0.80, 0.82, 0.78],
    "Mid-Market": [0.66, 0.72, 0.75, 0.78, 0.72],
    "Enterprise": [0.58, 0.66, 0.70, 0.74, 0.66],
}
# Median days spent in each open stage (lognormal with sigma STAGE_DAYS_SIGMA).
STAGE_DAYS_MEDIAN = {
    "SMB": [4.0, 6.0, 7.0, 6.0, 5.0],
    "Mid-Market": [8.0, 12.0, 15.0, 12.0, 10.0],
    "Enterprise": [16.0, 24.0, 30.0, 25.0, 20.0],
}
STAGE_DAYS_SIGMA = 0.55
LOST_DWELL_FACTOR = 1.4  # a deal that is lost lingers in its last stage this much longer
# Deal size in USD: lognormal(median, sigma) by segment.
AMOUNT_MEDIAN_USD = {"SMB": 12_000.0, "Mid-Market": 48_000.0, "Enterprise": 190_000.0}
AMOUNT_SIGMA = 0.55
# Close-date pushes (slippage) per deal: Poisson mean by segment.
PUSHES_MEAN = {"SMB": 1.0, "Mid-Market": 1.8, "Enterprise": 2.8}
AMOUNT_CHANGES_MEAN = 1.5  # Poisson mean of amount revisions per deal
FORECAST_OVERRIDES_MEAN = 1.2  # Poisson mean of rep forecast-category overrides per deal

# --- bookings process ------------------------------------------------------------------------
# Opportunity creation intensity: trend * yearly seasonality * weekday factor.
ANNUAL_GROWTH = 0.30  # +30 % a year
SEASON_AMPLITUDE = 0.15  # cosine, peak on SEASON_PEAK_DOY
SEASON_PEAK_DOY = 75
HOLIDAY_DIP = 0.35  # creation dips around Christmas (day-of-year 358, +-6 days)
WEEKEND_FACTOR = 0.15
# Quarter-end pull-in: a won deal whose natural close falls in the first PULL_WINDOW_DAYS of a
# quarter is pulled, with probability PULL_PROB, into the last PULL_TARGET_DAYS of the previous one.
PULL_PROB = 0.45
PULL_WINDOW_DAYS = 21
PULL_TARGET_DAYS = 7

# --- lead funnel -----------------------------------------------------------------------------
LEAD_P_MQL = 0.50  # lead -> MQL
LEAD_P_SQL = 0.55  # MQL -> SQL
LEAD_P_CONVERT = 0.70  # SQL -> converted (contact + opportunity)
LEAD_DAYS_TO_MQL = 6.0  # exponential means
LEAD_DAYS_TO_SQL = 10.0
LEAD_DAYS_TO_CONVERT = 7.0
LEAD_SOURCE_MIX = {
    "Web": 0.22,
    "Paid Search": 0.17,
    "Paid Social": 0.10,
    "Email": 0.10,
    "Webinar": 0.10,
    "Event": 0.08,
    "Partner": 0.08,
    "Outbound": 0.09,
    "Referral": 0.06,
}

# --- reps ------------------------------------------------------------------------------------
RAMP_DAYS = 120  # productivity rises linearly from RAMP_START to 1 over the first RAMP_DAYS
RAMP_START = 0.15
REP_MEAN_TENURE_YEARS = 3.0
NON_LOGGING_REP_SHARE = 0.12  # reps who never log activities
QUOTA_COVERAGE = 1.2  # quota = 1.2 x expected bookings of a fully ramped rep

# --- marketing channels ----------------------------------------------------------------------
# Naive-Bayes journey model: channel c appears in a lead's journey with probability
# P_NOT_CONVERTED[c] if the lead never converted, P_LOST[c] if it converted into a deal that was
# lost (or is still open) and P_WON[c] if the deal was won. Given the outcome, channels appear
# independently, so the odds ratio of an outcome between journeys with and without channel c is
# exactly the ratio below (no confounding by other channels).
CHANNEL_PRESENCE = {
    # channel:        (not converted, converted lost/open, won)
    "referral": (0.06, 0.16, 0.30),
    "events": (0.10, 0.22, 0.36),
    "webinar": (0.14, 0.26, 0.38),
    "partner": (0.08, 0.14, 0.22),
    "paid_search": (0.30, 0.40, 0.48),
    "email": (0.35, 0.42, 0.47),
    "organic_search": (0.40, 0.44, 0.47),
    "direct": (0.45, 0.46, 0.47),
    "paid_social": (0.25, 0.22, 0.20),
    "display": (0.22, 0.17, 0.14),
}


def odds_ratio(p1: float, p0: float) -> float:
    return (p1 * (1 - p0)) / (p0 * (1 - p1))


def channel_effects(won_share_of_converted: float) -> dict:
    """Odds multipliers of each channel's presence: lead->opportunity and opportunity->won."""
    out = {}
    for ch, (p_nc, p_lost, p_won) in CHANNEL_PRESENCE.items():
        p_conv = won_share_of_converted * p_won + (1 - won_share_of_converted) * p_lost
        out[ch] = {
            "presence": {"not_converted": p_nc, "converted_not_won": p_lost, "won": p_won},
            "lead_to_opportunity_odds_ratio": round(odds_ratio(p_conv, p_nc), 4),
            "opportunity_to_won_odds_ratio": round(odds_ratio(p_won, p_lost), 4),
        }
    return out


def channel_ranking(effects: dict, key: str = "lead_to_opportunity_odds_ratio") -> list[str]:
    return sorted(effects, key=lambda c: -effects[c][key])


# --- derived truth ---------------------------------------------------------------------------
def win_probability(segment: str) -> float:
    return float(np.prod(STAGE_ADVANCE[segment]))


def mean_amount_usd(segment: str) -> float:
    return AMOUNT_MEDIAN_USD[segment] * math.exp(AMOUNT_SIGMA**2 / 2)


def creation_weight(days: np.ndarray, start_day: float) -> np.ndarray:
    """Relative opportunity/lead creation intensity on integer days (since epoch)."""
    days = np.asarray(days, dtype=np.float64)
    years = (days - start_day) / 365.25
    trend = np.exp(math.log1p(ANNUAL_GROWTH) * years)
    doy = _day_of_year(days)
    season = 1 + SEASON_AMPLITUDE * np.cos(2 * np.pi * (doy - SEASON_PEAK_DOY) / 365.25)
    season -= HOLIDAY_DIP * np.exp(-(((doy - 358) / 6.0) ** 2))
    weekday = (days.astype(np.int64) + 3) % 7  # 0 = Monday (1970-01-01 was a Thursday)
    wk = np.where(weekday >= 5, WEEKEND_FACTOR, 1.0)
    return trend * season * wk


def _day_of_year(days: np.ndarray) -> np.ndarray:
    d = np.asarray(days, dtype="int64").astype("datetime64[D]")
    y = d.astype("datetime64[Y]")
    return (d - y).astype(np.int64) + 1


def quarter_starts(first_day: int, last_day: int) -> np.ndarray:
    """Integer days of every calendar quarter start in [first_day - 100, last_day + 100]."""
    m0 = np.datetime64(int(first_day) - 100, "D").astype("datetime64[M]")
    m1 = np.datetime64(int(last_day) + 100, "D").astype("datetime64[M]")
    months = np.arange(m0, m1 + 1)
    qs = months[(months.astype(np.int64) % 3) == 0]
    return qs.astype("datetime64[D]").astype(np.int64)


@cache
def stage_duration_quantiles(segment: str, n: int = 200_000, seed: int = 7) -> dict:
    """Won-cycle length (days, before quarter-end pull-in): quantiles by simulation."""
    rng = np.random.default_rng(seed)
    med = np.array(STAGE_DAYS_MEDIAN[segment])
    d = med * np.exp(STAGE_DAYS_SIGMA * rng.standard_normal((n, len(med))))
    cyc = d.sum(axis=1)
    q = np.quantile(cyc, [0.25, 0.5, 0.75, 0.9])
    return {
        "p25": float(q[0]),
        "p50": float(q[1]),
        "p75": float(q[2]),
        "p90": float(q[3]),
        "mean": float(cyc.mean()),
    }


@cache
def won_cycle_pmf(segment: str, max_days: int = 900, n: int = 400_000, seed: int = 11):
    """Probability mass of the natural won-cycle length in days (fractional part kept by
    splitting mass between the two neighbouring days)."""
    rng = np.random.default_rng(seed)
    med = np.array(STAGE_DAYS_MEDIAN[segment])
    cyc = (med * np.exp(STAGE_DAYS_SIGMA * rng.standard_normal((n, len(med))))).sum(axis=1)
    cyc = np.minimum(cyc, max_days - 2)
    pmf = np.bincount(cyc.astype(np.int64), minlength=max_days) / n
    pmf.flags.writeable = False  # cached: shared by every caller
    return pmf


def noiseless_bookings_daily(
    n_opportunities: int,
    gen_start_day: int,
    end_day: int,
    start_day: int,
    horizon: int | None = None,
) -> np.ndarray:
    """Expected closed-won USD per day, for days [gen_start_day, horizon).

    `n_opportunities` are created on days [gen_start_day, end_day) with density proportional to
    `creation_weight` (creation continues at the same intensity after end_day, which only matters
    for days >= end_day); each is won with the segment's win probability after a won-cycle drawn
    from `won_cycle_pmf`, then pulled into the quarter end as described by PULL_*. The expected
    amount is the lognormal mean by segment.
    """
    horizon = end_day if horizon is None else max(horizon, end_day)
    days = np.arange(gen_start_day, horizon)
    w = creation_weight(days, start_day)
    f = w / w[: end_day - gen_start_day].sum()
    n_days = len(days)
    daily = np.zeros(n_days)
    for seg in SEGMENTS:
        k = n_opportunities * SEGMENT_MIX[seg] * win_probability(seg) * mean_amount_usd(seg)
        pmf = won_cycle_pmf(seg)
        # creation happens at a uniform intra-day time; the close day is floor(c + u + cycle).
        daily += k * np.convolve(f, _smear(pmf))[:n_days]
    for qs in quarter_starts(gen_start_day, horizon):
        a = qs - gen_start_day
        if a - PULL_TARGET_DAYS < 0 or a >= n_days:
            continue
        hi = min(a + PULL_WINDOW_DAYS, n_days)
        moved = PULL_PROB * daily[a:hi]
        daily[a:hi] -= moved
        daily[a - PULL_TARGET_DAYS : a] += moved.sum() / PULL_TARGET_DAYS
    return daily


def monthly(daily: np.ndarray, days: np.ndarray, start_day: int, end_day: int) -> dict:
    """Sum a daily series into calendar months ('YYYY-MM') for days in [start_day, end_day)."""
    months = days.astype("datetime64[D]").astype("datetime64[M]")
    keep = (days >= start_day) & (days < end_day)
    out: dict[str, float] = {}
    for m in np.unique(months[keep]):
        out[str(m)] = round(float(daily[keep & (months == m)].sum()), 2)
    return out


def _smear(pmf: np.ndarray) -> np.ndarray:
    """Creation time within the day is ~uniform: spread each cycle bin over two close days."""
    out = np.zeros(len(pmf) + 1)
    out[:-1] += 0.5 * pmf
    out[1:] += 0.5 * pmf
    return out


def month_label(day: int) -> str:
    return str(np.datetime64(int(day), "D").astype("datetime64[M]"))


def day_of(d: date) -> int:
    return (d - EPOCH).days


def date_of(day: int) -> date:
    return EPOCH + timedelta(days=int(day))


@cache
def _funnel_truth() -> str:
    import json

    return json.dumps(_funnel_truth_uncached())


def funnel_truth() -> dict:
    """Per segment: stage advance probabilities, win probability, durations, amounts."""
    import json

    return json.loads(_funnel_truth())


def _funnel_truth_uncached() -> dict:
    stages = OPEN_STAGES
    return {
        seg: {
            "advance_probability": {
                f"{stages[i]}->{stages[i + 1] if i + 1 < len(stages) else 'Closed Won'}": p
                for i, p in enumerate(STAGE_ADVANCE[seg])
            },
            "win_probability": round(win_probability(seg), 6),
            "stage_days_median": dict(zip(stages, STAGE_DAYS_MEDIAN[seg], strict=True)),
            "stage_days_sigma": STAGE_DAYS_SIGMA,
            "lost_dwell_factor": LOST_DWELL_FACTOR,
            "won_cycle_days_natural": stage_duration_quantiles(seg),
            "amount_usd_median": AMOUNT_MEDIAN_USD[seg],
            "amount_usd_sigma": AMOUNT_SIGMA,
            "amount_usd_mean": round(mean_amount_usd(seg), 2),
            "pushes_mean": PUSHES_MEAN[seg],
        }
        for seg in SEGMENTS
    }
