"""Bookings series as known at an as-of time, from opportunity state intervals.

`history` is `marts.opportunity_history` as a DataFrame: one row per opportunity state interval
(opportunity_id, valid_from, valid_to (NaT = current), stage_name, amount_usd, close_date,
probability, is_closed, is_won, segment, region). The state as of D is the interval with
`valid_from <= D < valid_to` (or valid_to null). A booking is known at D when the opportunity's
state at D is won; it counts in the period of its close date *as recorded at D*. So a win entered
after D (even with a backdated close date) is invisible to a forecast made at D.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasts.periods import as_of_timestamp, period_index, period_start, period_starts

HISTORY_COLUMNS = [
    "opportunity_id",
    "valid_from",
    "valid_to",
    "stage_name",
    "amount_usd",
    "close_date",
    "probability",
    "is_closed",
    "is_won",
    "segment",
    "region",
]
TOTAL = "total"
UNKNOWN = "Unknown"
ALL = "ALL"


def series_key(segment: str | None = None, region: str | None = None) -> str:
    if segment is None and region is None:
        return TOTAL
    if region is None:
        return f"segment={segment}"
    if segment is None:
        return f"region={region}"
    return f"segment={segment}|region={region}"


def parse_key(key: str) -> tuple[str, str]:
    """(segment, region) for a series key, "ALL" where the key does not split by it."""
    parts = dict(p.split("=", 1) for p in key.split("|")) if key != TOTAL else {}
    return parts.get("segment", ALL), parts.get("region", ALL)


def history_with_naive_times(history: pd.DataFrame) -> pd.DataFrame:
    """A copy of the history's columns, checked, with naive UTC timestamps and close dates as
    timestamps (the common first step of `prepare_history` and `inputs.frame_inputs`)."""
    missing = [c for c in HISTORY_COLUMNS if c not in history.columns]
    if missing:
        raise ValueError(f"opportunity history is missing column(s): {', '.join(missing)}")
    h = history[HISTORY_COLUMNS].copy()
    for col in ("valid_from", "valid_to"):
        ts = pd.to_datetime(h[col], utc=True)
        h[col] = ts.dt.tz_localize(None)
    h["close_date"] = pd.to_datetime(h["close_date"]).dt.normalize()
    if getattr(h["close_date"].dt, "tz", None) is not None:
        h["close_date"] = h["close_date"].dt.tz_localize(None)
    return h


def prepare_history(history: pd.DataFrame) -> pd.DataFrame:
    """Check columns and normalize types (naive UTC timestamps, dates as timestamps)."""
    h = history_with_naive_times(history)
    h["amount_usd"] = pd.to_numeric(h["amount_usd"], errors="coerce").fillna(0.0).astype(float)
    # categoricals: filtering and grouping large histories moves integer codes, not strings
    h["segment"] = h["segment"].fillna(UNKNOWN).astype(str).astype("category")
    h["region"] = h["region"].fillna(UNKNOWN).astype(str).astype("category")
    h["stage_name"] = h["stage_name"].astype(str).astype("category")
    h["is_closed"] = h["is_closed"].fillna(False).astype(bool)
    h["is_won"] = h["is_won"].fillna(False).astype(bool)
    # integer opportunity key: set operations on it are ~10x faster than on Arrow strings
    h["oid"] = pd.factorize(h["opportunity_id"])[0].astype(np.int64)
    return h


def state_as_of(history: pd.DataFrame, as_of) -> pd.DataFrame:
    """Each opportunity's state at `as_of` (rows of `prepare_history` output)."""
    d = as_of_timestamp(as_of)
    vf, vt = history["valid_from"], history["valid_to"]
    mask = (vf <= d) & (vt.isna() | (vt > d))
    return history.loc[mask]


def bookings_as_of(history: pd.DataFrame, as_of) -> pd.DataFrame:
    """Won deals known at `as_of` with a close date before it: booking_date, segment, region,
    amount_usd."""
    d = as_of_timestamp(as_of)
    st = state_as_of(history, d)
    won = st[st["is_won"] & (st["close_date"] < d.normalize())]
    return won.rename(columns={"close_date": "booking_date"})[
        ["opportunity_id", "booking_date", "segment", "region", "amount_usd"]
    ]


def bookings_from_daily(bookings_daily: pd.DataFrame) -> pd.DataFrame:
    """`marts.bookings_daily` in the same shape as `bookings_as_of` (for scoring actuals)."""
    b = bookings_daily.rename(columns={"bookings_usd": "amount_usd"}).copy()
    b["booking_date"] = pd.to_datetime(b["booking_date"])
    b["segment"] = b["segment"].fillna(UNKNOWN).astype(str)
    b["region"] = b["region"].fillna(UNKNOWN).astype(str)
    return b[["booking_date", "segment", "region", "amount_usd"]]


def build_series(
    bookings: pd.DataFrame,
    freq: str,
    end,
    start=None,
    segments: list[str] | None = None,
    regions: list[str] | None = None,
) -> dict[str, pd.Series]:
    """Regular bookings series per key (total, segment=..., region=...) over the periods from
    `start` (default: first booking) up to but excluding the period containing `end`.

    Periods without bookings are 0. Segment and region lists default to those seen in the data;
    pass the full lists so every key exists even when a segment had no bookings yet."""
    end_p = period_start(end, freq)
    b = bookings[bookings["booking_date"] < end_p]
    first = (
        period_start(start, freq)
        if start is not None
        else (period_start(b["booking_date"].min(), freq) if len(b) else end_p)
    )
    idx = period_index(first, end_p, freq)[:-1]  # exclude the period containing `end`
    b = b[b["booking_date"] >= first].assign(
        period=lambda x: period_starts(x["booking_date"], freq).to_numpy()
    )
    segments = sorted(set(segments or []) | set(b["segment"].unique()))
    regions = sorted(set(regions or []) | set(b["region"].unique()))
    out: dict[str, pd.Series] = {}

    def _sum(frame: pd.DataFrame) -> pd.Series:
        s = frame.groupby("period")["amount_usd"].sum()
        return s.reindex(idx, fill_value=0.0).astype(float).rename(None)

    out[series_key()] = _sum(b)
    # one grouping per dimension (same rows, same order as filtering per value: same sums)
    for dim, values in (("segment", segments), ("region", regions)):
        parts = {str(k): g for k, g in b[[dim, "period", "amount_usd"]].groupby(dim, observed=True)}
        for v in values:
            g = parts.get(str(v), b.iloc[0:0])
            key = series_key(segment=v) if dim == "segment" else series_key(region=v)
            out[key] = _sum(g)
    for s in out.values():
        s.index = pd.DatetimeIndex(s.index)
    return out


def actuals_table(bookings: pd.DataFrame, freq: str, end) -> pd.DataFrame:
    """Long table (series_key, period_start, actual) of complete periods before `end`."""
    series = build_series(bookings, freq, end)
    if not series:
        return pd.DataFrame(columns=["series_key", "period_start", "actual"])
    # one frame from arrays (the same rows as one frame per key, concatenated)
    return pd.DataFrame(
        {
            "series_key": np.repeat(
                np.array(list(series), dtype=object), [len(s) for s in series.values()]
            ),
            "period_start": pd.DatetimeIndex(
                np.concatenate([s.index.to_numpy() for s in series.values()])
            ),
            "actual": np.concatenate([s.to_numpy() for s in series.values()]),
        }
    )


def hierarchy(keys) -> dict[str, list[str]]:
    """Children of the total per split dimension: {"segment": [...], "region": [...]}."""
    out: dict[str, list[str]] = {"segment": [], "region": []}
    for k in keys:
        if k == TOTAL or "|" in k:
            continue
        dim = k.split("=", 1)[0]
        out.setdefault(dim, []).append(k)
    return out


def reconcile(
    table: pd.DataFrame,
    value_cols=("point", "lo80", "hi80", "lo95", "hi95"),
    fallback_share: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Proportional (top-down) reconciliation: for each period and each split dimension, scale the
    children so their points sum to the total's point; bounds get the same factor. A period
    whose children all forecast 0 while the total does not is split by `fallback_share`
    (historical shares) or evenly."""
    t = table.copy()
    keys = hierarchy(t["series_key"].unique())
    total = t[t["series_key"] == TOTAL].set_index("period_start")["point"]
    total_rows = t[t["series_key"] == TOTAL].set_index("period_start")[list(value_cols)]
    for children in keys.values():
        if not children:
            continue
        mask = t["series_key"].isin(children)
        sums = t[mask].groupby("period_start")["point"].sum()
        for p, tot in total.items():
            rows = mask & (t["period_start"] == p)
            s = float(sums.get(p, 0.0))
            if s > 0:
                factor = tot / s
                t.loc[rows, list(value_cols)] = t.loc[rows, list(value_cols)] * factor
            elif tot != 0:  # children all forecast 0: split the total by historical share
                share = np.array(
                    [
                        (fallback_share or {}).get(k, 1.0 / len(children))
                        for k in t.loc[rows, "series_key"]
                    ]
                )
                share = (
                    share / share.sum()
                    if share.sum() > 0
                    else np.full(len(share), 1.0 / len(share))
                )
                t.loc[rows, list(value_cols)] = np.outer(share, total_rows.loc[p].to_numpy())
    return t


def known_at(history: pd.DataFrame, t) -> pd.DataFrame:
    """The history table as it looked at time `t`: intervals opened after `t` do not exist yet
    and intervals closed after `t` were still open (used to test for look-ahead)."""
    d = as_of_timestamp(t)
    h = history[history["valid_from"] <= d].copy()
    h.loc[h["valid_to"] > d, "valid_to"] = pd.NaT
    return h
