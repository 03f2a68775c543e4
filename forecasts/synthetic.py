"""Synthetic opportunity history with planted trend, yearly seasonality and quarter-end pushes.

Used by tests and benchmarks when the org simulator's marts are not at hand. Produces the
`marts.opportunity_history` shape (one row per state interval) and the planted truth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasts.series import HISTORY_COLUMNS

SEG = np.array(["SMB", "Mid-Market", "Enterprise"])
SEG_P = np.array([0.55, 0.3, 0.15])
SEG_AMOUNT = np.array([12_000.0, 45_000.0, 160_000.0])
SEG_CYCLE = np.array([35.0, 60.0, 95.0])
REG = np.array(["NA", "EMEA", "APAC"])
REG_P = np.array([0.5, 0.3, 0.2])


def synthetic_history(
    start: str = "2023-01-02",
    end: str = "2026-01-05",
    seed: int = 0,
    deals_per_day: float = 12.0,
    trend_per_year: float = 0.25,
    seasonal_amp: float = 0.3,
    quarter_end_pull: float = 0.5,
    win_rate: float = 0.35,
    late_entry_share: float = 0.3,
) -> tuple[pd.DataFrame, dict]:
    """History intervals for deals created from 200 days before `start` to `end`.

    Creation rate = deals_per_day x (1 + trend_per_year x years) x (1 + seasonal_amp x
    sin(2 pi day-of-year / 365.25)); a share `quarter_end_pull` of deals whose close falls in
    the last month of a quarter is pulled into the quarter's last 7 days. A share
    `late_entry_share` of closes is entered 1-5 days after the close date (backdated)."""
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start) - pd.Timedelta(days=200)
    days = pd.date_range(t0, pd.Timestamp(end) - pd.Timedelta(days=1), freq="D")
    years = (days - pd.Timestamp(start)).days.to_numpy() / 365.25
    doy = days.day_of_year.to_numpy()
    rate = (
        deals_per_day
        * (1 + trend_per_year * np.clip(years, -1, None))
        * (1 + seasonal_amp * np.sin(2 * np.pi * doy / 365.25))
    )
    counts = rng.poisson(np.clip(rate, 0, None))
    created = np.repeat(days.to_numpy(), counts)
    n = created.size
    created = created + rng.integers(8 * 3600, 18 * 3600, n).astype("timedelta64[s]")
    seg_i = rng.choice(3, n, p=SEG_P)
    reg_i = rng.choice(3, n, p=REG_P)
    amount = np.round(SEG_AMOUNT[seg_i] * rng.lognormal(0, 0.5, n), 2)
    cycle = np.maximum(3, rng.gamma(4.0, SEG_CYCLE[seg_i] / 4.0)).astype(int)
    planned = np.maximum(5, (SEG_CYCLE[seg_i] * rng.uniform(0.6, 1.1, n)).astype(int))
    day0 = created.astype("datetime64[D]")
    close = day0 + cycle.astype("timedelta64[D]")
    # quarter-end pull
    cl = pd.DatetimeIndex(close)
    q_end = (cl + pd.offsets.QuarterEnd(0)).normalize()
    in_last_month = cl.month.isin([3, 6, 9, 12])
    pull = in_last_month & (rng.random(n) < quarter_end_pull)
    pulled = q_end - pd.to_timedelta(rng.integers(0, 7, n), unit="D")
    close = np.where(pull, pulled.to_numpy().astype("datetime64[D]"), close)
    won = rng.random(n) < win_rate
    lag = np.where(rng.random(n) < late_entry_share, rng.integers(1, 6, n), 0)
    closed_at = close.astype("datetime64[s]") + (lag * 86400 + 17 * 3600).astype("timedelta64[s]")
    planned_close = day0 + planned.astype("timedelta64[D]")
    mid_at = created + (0.5 * (closed_at - created)).astype("timedelta64[s]")
    mid_close = planned_close + ((close - planned_close) * 0.5).astype("timedelta64[D]")
    ids = np.array([f"006S{i:011d}" for i in range(n)])
    segs, regs = SEG[seg_i], REG[reg_i]
    final_stage = np.where(won, "Closed Won", "Closed Lost")
    first_stage = rng.choice(np.array(["Prospecting", "Qualification"]), n, p=[0.7, 0.3])
    mid_stage = rng.choice(
        np.array(["Needs Analysis", "Proposal", "Negotiation"]), n, p=[0.4, 0.35, 0.25]
    )
    mid_prob = (
        pd.Series(mid_stage)
        .map({"Needs Analysis": 0.4, "Proposal": 0.6, "Negotiation": 0.8})
        .to_numpy()
    )
    first_prob = np.where(first_stage == "Prospecting", 0.1, 0.2)
    frames = [
        pd.DataFrame(
            {
                "opportunity_id": ids,
                "valid_from": created,
                "valid_to": mid_at,
                "stage_name": first_stage,
                "amount_usd": amount,
                "close_date": planned_close,
                "probability": first_prob,
                "is_closed": False,
                "is_won": False,
            }
        ),
        pd.DataFrame(
            {
                "opportunity_id": ids,
                "valid_from": mid_at,
                "valid_to": closed_at,
                "stage_name": mid_stage,
                "amount_usd": amount,
                "close_date": mid_close,
                "probability": mid_prob,
                "is_closed": False,
                "is_won": False,
            }
        ),
        pd.DataFrame(
            {
                "opportunity_id": ids,
                "valid_from": closed_at,
                "valid_to": np.datetime64("NaT"),
                "stage_name": final_stage,
                "amount_usd": amount,
                "close_date": close,
                "probability": won.astype(float),
                "is_closed": True,
                "is_won": won,
            }
        ),
    ]
    for f, s, r in zip(frames, [segs] * 3, [regs] * 3, strict=True):
        f["segment"], f["region"] = s, r
    h = pd.concat(frames, ignore_index=True)
    horizon_end = np.datetime64(pd.Timestamp(end))
    h = h[h["valid_from"] < horizon_end].copy()  # nothing recorded after `end`
    h.loc[h["valid_to"] >= horizon_end, "valid_to"] = pd.NaT
    for col in ("valid_from", "valid_to"):
        h[col] = pd.to_datetime(h[col])
    h["close_date"] = pd.to_datetime(h["close_date"])
    truth = {
        "deals": int(n),
        "win_rate": win_rate,
        "trend_per_year": trend_per_year,
        "seasonal_amp": seasonal_amp,
        "quarter_end_pull": quarter_end_pull,
        "end": pd.Timestamp(end),
    }
    h = h.sort_values(["opportunity_id", "valid_from"]).reset_index(drop=True)
    return h[HISTORY_COLUMNS], truth


def bookings_daily(history: pd.DataFrame) -> pd.DataFrame:
    """`marts.bookings_daily` from final states (what the dbt mart holds)."""
    final = history[history["valid_to"].isna() & history["is_won"]]
    g = (
        final.groupby([final["close_date"], "segment", "region"])["amount_usd"]
        .agg(["sum", "size"])
        .reset_index()
    )
    return pd.DataFrame(
        {
            "booking_date": g["close_date"].dt.date,
            "segment": g["segment"],
            "region": g["region"],
            "currency": "USD",
            "bookings_usd": g["sum"],
            "deals_won": g["size"].astype("int64"),
        }
    )
