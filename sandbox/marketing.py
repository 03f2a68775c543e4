"""Marketing data that matches a demo org: daily ad spend and touchpoints (landing files).

Each lead of the org gets a journey of touches before its creation. Which channels appear in a
journey depends on what became of the lead (never converted / converted into a deal not won /
won) through the presence probabilities in `sandbox.truth.CHANNEL_PRESENCE`: channels appear
independently given the outcome, so every channel has a known, exact odds ratio on conversion
(recorded in `truth["channel_effects"]` by `sandbox.org.generate`). Some touches come from
emails the org does not know (anonymous visitors who never became leads).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sandbox import truth as T
from sandbox.org import MS_PER_DAY, Org, _days
from sandbox.schema import MARKETING_CHANNELS
from sandbox.schema import TOUCH_TYPES as CONTRACT_TOUCH_TYPES

log = logging.getLogger(__name__)

CHANNELS = list(MARKETING_CHANNELS)
TOUCH_TYPES = list(CONTRACT_TOUCH_TYPES)
PAID_CHANNELS = ["paid_search", "paid_social", "display", "email", "webinar", "events", "partner"]
FREE_CHANNELS = ["organic_search", "direct", "referral"]
# touch type of a channel's non-final touches
CHANNEL_TOUCH = {
    "paid_search": "ad_click",
    "paid_social": "ad_click",
    "display": "ad_click",
    "email": "email_click",
    "webinar": "webinar",
    "events": "event",
    "organic_search": "web_visit",
    "direct": "web_visit",
    "referral": "web_visit",
    "partner": "web_visit",
}
UTM = {  # channel: (utm_source, utm_medium)
    "paid_search": ("google", "cpc"),
    "paid_social": ("linkedin", "paid_social"),
    "display": ("programmatic", "display"),
    "email": ("marketo", "email"),
    "webinar": ("zoom", "webinar"),
    "events": ("events", "event"),
    "organic_search": ("google", "organic"),
    "direct": ("(direct)", "(none)"),
    "referral": ("customer", "referral"),
    "partner": ("partner", "referral"),
}
FREE_CAMPAIGN = {"organic_search": "seo", "direct": "(none)", "referral": "customer-referral"}
# share of touches whose time is written with a non-UTC offset, and the offsets used
OFFSETS = [
    ("Z", 0),
    ("+00:00", 0),
    ("-05:00", -300),
    ("-08:00", -480),
    ("+01:00", 60),
    ("+02:00", 120),
    ("+05:30", 330),
    ("+09:00", 540),
]
OFFSET_P = [0.45, 0.15, 0.12, 0.06, 0.1, 0.05, 0.03, 0.04]
UNKNOWN_EMAIL_SHARE = 0.08
JOURNEY_DAYS_MEAN = 21.0  # touches happen on average this many days before the lead's creation


def generate_marketing(org: Org, seed: int = 0) -> dict[str, pa.Table]:
    """Touchpoints and daily ad spend consistent with `org` (deterministic for org and seed)."""
    rng = np.random.default_rng([seed, int(org.truth.get("seed", 0))])
    touch = _touchpoints(org, rng)
    spend = _ad_spend(org, rng)
    log.info("marketing: %d touchpoints, %d ad spend rows", touch.num_rows, spend.num_rows)
    return {"ad_spend": spend, "touchpoints": touch}


def lead_outcomes(org: Org) -> tuple[pa.Array, pa.Array, np.ndarray, np.ndarray]:
    """(lead Id, email, created day, outcome) for leads whose journeys are simulated: 0 never
    converted, 1 converted into a deal that is not won (lost or open), 2 converted and won.
    Deleted leads and planted duplicate records (they reuse another lead's email) are skipped."""
    lead = org.tables["Lead"]
    dup = {
        i
        for d in org.truth.get("defects", [])
        if d["object"] == "Lead" and d["kind"] == "duplicate"
        for i in d["ids"]
    }
    keep = pc.and_(pc.invert(lead["IsDeleted"]), pc.is_valid(lead["Email"]))
    if dup:
        keep = pc.and_(keep, pc.invert(pc.is_in(lead["Id"], pa.array(sorted(dup)))))
    lead = lead.filter(keep)
    opp = org.tables["Opportunity"]
    won_ids = opp.filter(opp["IsWon"])["Id"]
    conv = lead["IsConverted"].to_numpy(zero_copy_only=False)
    won = pc.is_in(lead["ConvertedOpportunityId"], won_ids).to_numpy(zero_copy_only=False)
    outcome = np.where(conv, np.where(won, 2, 1), 0)
    return (
        lead["Id"].combine_chunks(),
        lead["Email"].combine_chunks(),
        _days(lead["CreatedDate"]),
        outcome,
    )


def _touchpoints(org: Org, rng: np.random.Generator) -> pa.Table:
    _, email, created, outcome = lead_outcomes(org)
    n = len(created)
    presence_p = np.array([T.CHANNEL_PRESENCE[c] for c in CHANNELS])  # (channels, 3)
    present = rng.random((n, len(CHANNELS))) < presence_p[:, outcome].T
    # a journey needs at least one touch: empty journeys become a direct visit
    empty = ~present.any(axis=1)
    present[empty, CHANNELS.index("direct")] = True
    lead_i, ch = np.nonzero(present)
    k = 1 + rng.poisson(1.0, len(lead_i))
    t_lead = np.repeat(lead_i, k)
    t_ch = np.repeat(ch, k)
    t_time = created[t_lead] - rng.exponential(JOURNEY_DAYS_MEAN, len(t_lead)) - 1 / 1440
    t_type = np.array([TOUCH_TYPES.index(CHANNEL_TOUCH[c]) for c in CHANNELS])[t_ch]
    # the form fill that created the lead: one of the journey's channels, minutes before
    first_pair = np.searchsorted(lead_i, np.arange(n))
    n_pairs = np.bincount(lead_i, minlength=n)
    last_ch = ch[first_pair + np.floor(rng.random(n) * n_pairs).astype(np.int64)]
    f_time = created - rng.uniform(1, 30, n) / 1440
    t_lead = np.concatenate([t_lead, np.arange(n)])
    t_ch = np.concatenate([t_ch, last_ch])
    t_time = np.concatenate([t_time, f_time])
    t_type = np.concatenate([t_type, np.full(n, TOUCH_TYPES.index("form_fill"))])
    t_email = email.take(pa.array(t_lead))
    # anonymous visitors: emails the org has never seen
    nu = int(UNKNOWN_EMAIL_SHARE * len(t_lead))
    u_ch = rng.integers(0, len(CHANNELS), nu)
    u_time = rng.uniform(created.min() - 30, org.as_of.timestamp() / 86400 - 1e-3, nu)
    u_email = pc.binary_join_element_wise(
        "visitor",
        pa.array(rng.integers(0, 10**9, nu)).cast(pa.string()),
        "@anonymous.example.org",
        "",
    )
    ch_all = np.concatenate([t_ch, u_ch])
    time_all = np.concatenate([t_time, u_time])
    touch_of = np.array([TOUCH_TYPES.index(CHANNEL_TOUCH[c]) for c in CHANNELS])
    type_all = np.concatenate([t_type, touch_of[u_ch]])
    email_all = pa.concat_arrays([t_email, u_email])
    order = np.argsort(time_all, kind="stable")
    ch_all, time_all, type_all = ch_all[order], time_all[order], type_all[order]
    email_all = email_all.take(pa.array(order))
    m = len(order)
    campaign = _campaign_names(org, ch_all, time_all)
    # some people type their email with capitals or stray spaces; matching must normalise
    messy = rng.random(m) < 0.03
    email_all = pc.if_else(
        pa.array(messy),
        pc.binary_join_element_wise(" ", pc.utf8_upper(email_all), "", ""),
        email_all,
    )
    camp_labels = campaign.dictionary.to_pylist()
    utm_campaign = [c.lower().replace(" ", "-") for c in camp_labels]
    return pa.table(
        {
            "touchpoint_id": pc.binary_join_element_wise(
                "tp_",
                pc.utf8_lpad(
                    pa.array(np.arange(1, m + 1)).cast(pa.string()), width=10, padding="0"
                ),
                "",
            ),
            "occurred_at": _iso_with_offset(rng, time_all),
            "channel": _dict(ch_all, CHANNELS),
            "campaign": campaign,
            "touch_type": _dict(type_all, TOUCH_TYPES),
            "email": email_all,
            "utm_source": _dict(ch_all, [UTM[c][0] for c in CHANNELS]),
            "utm_medium": _dict(ch_all, [UTM[c][1] for c in CHANNELS]),
            "utm_campaign": _dict(campaign.indices.to_numpy(zero_copy_only=False), utm_campaign),
        }
    )


def _campaign_names(org: Org, ch: np.ndarray, t: np.ndarray) -> pa.DictionaryArray:
    """The org's Campaign of the touch's channel running on that day, else a fixed label."""
    camp = org.tables["Campaign"]
    c_ch = np.array(camp["Channel__c"].to_pylist(), dtype=object)
    c_start = _days(camp["StartDate"])
    names = camp["Name"].to_pylist()
    out_idx = len(names) + np.asarray(ch, dtype=np.int64)  # default: the channel's fixed label
    for ci, c in enumerate(CHANNELS):
        sel = np.flatnonzero(ch == ci)
        rows = np.flatnonzero(c_ch == c)
        if not len(sel) or not len(rows):
            continue
        rows = rows[np.argsort(c_start[rows])]
        pos = np.searchsorted(c_start[rows], np.floor(t[sel]), side="right") - 1
        out_idx[sel] = rows[np.clip(pos, 0, len(rows) - 1)]
    labels = names + [FREE_CAMPAIGN.get(c, f"{c}-always-on") for c in CHANNELS]
    return _dict(out_idx, labels)


def _dict(idx: np.ndarray, values: list[str]) -> pa.DictionaryArray:
    """values[idx] as a dictionary array (compact while building; decoded before returning)."""
    uniq, remap = np.unique(np.array(values, dtype=object), return_inverse=True)
    codes = remap.astype(np.int32)[np.asarray(idx, dtype=np.int64)]
    return pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(uniq.tolist(), pa.string()))


def _iso_with_offset(rng: np.random.Generator, t: np.ndarray) -> pa.Array:
    """ISO 8601 strings in a random local offset ('Z', '+00:00', '-05:00', '+05:30', ...)."""
    pick = rng.choice(len(OFFSETS), len(t), p=OFFSET_P)
    minutes = np.array([m for _, m in OFFSETS])[pick]
    ms = np.floor(t * MS_PER_DAY).astype(np.int64) + minutes * 60_000
    local = pa.array(ms, type=pa.timestamp("ms"))
    text = pc.strftime(local, format="%Y-%m-%dT%H:%M:%S")  # seconds carry the milliseconds
    suffix = pa.array([s for s, _ in OFFSETS]).take(pa.array(pick))
    return pc.binary_join_element_wise(text, suffix, "")


def _ad_spend(org: Org, rng: np.random.Generator) -> pa.Table:
    camp = org.tables["Campaign"]
    end_day = int(np.floor(org.as_of.timestamp() / 86400))
    start = _days(camp["StartDate"]).astype(np.int64)
    stop = np.minimum(_days(camp["EndDate"]).astype(np.int64), end_day - 1)
    budget = np.nan_to_num(
        np.asarray(camp["BudgetedCost"].to_numpy(zero_copy_only=False), dtype=np.float64)
    )
    ch_names = camp["Channel__c"].to_pylist()
    length = np.maximum(stop - start + 1, 0)
    ok = length > 0
    c_idx = np.repeat(np.flatnonzero(ok), length[ok])
    day = start[c_idx] + (
        np.arange(len(c_idx)) - np.repeat(np.cumsum(length[ok]) - length[ok], length[ok])
    )
    total_len = (_days(camp["EndDate"]) - _days(camp["StartDate"]) + 1)[c_idx]
    weekday = (day + 3) % 7
    spend = (
        budget[c_idx]
        / total_len
        * np.where(weekday >= 5, 0.5, 1.12)
        * rng.lognormal(0, 0.25, len(day))
    )
    spend = np.round(spend, 2)
    channel = pa.array(ch_names).take(pa.array(c_idx))
    campaign = camp["Name"].combine_chunks().take(pa.array(c_idx))
    cpm = {
        "paid_search": 40.0,
        "paid_social": 12.0,
        "display": 4.0,
        "email": 1.0,
        "webinar": 60.0,
        "events": 150.0,
        "partner": 30.0,
    }
    ctr = {
        "paid_search": 0.04,
        "paid_social": 0.008,
        "display": 0.002,
        "email": 0.03,
        "webinar": 0.2,
        "events": 0.3,
        "partner": 0.02,
    }
    ch_arr = np.array(ch_names, dtype=object)[c_idx]
    ch_codes = np.unique(ch_arr, return_inverse=True)
    cpm_v = np.array([cpm.get(c, 10.0) for c in ch_codes[0]])[ch_codes[1]]
    ctr_v = np.array([ctr.get(c, 0.01) for c in ch_codes[0]])[ch_codes[1]]
    impressions = np.round(spend / cpm_v * 1000).astype(np.int64)
    clicks = rng.binomial(impressions, ctr_v)
    # free channels: a zero-spend row per day so every channel is present
    d0 = int(start.min())
    free_days = np.arange(d0, end_day)
    nf = len(free_days) * len(FREE_CHANNELS)
    f_day = np.tile(free_days, len(FREE_CHANNELS))
    f_ch = np.repeat(FREE_CHANNELS, len(free_days))
    tbl = pa.table(
        {
            "date": pa.array(np.concatenate([day, f_day]).astype(np.int32), type=pa.date32()),
            "channel": pa.concat_arrays([channel, pa.array(f_ch.tolist())]),
            "campaign": pa.concat_arrays([campaign, pa.array([FREE_CAMPAIGN[c] for c in f_ch])]),
            "spend": np.concatenate([spend, np.zeros(nf)]),
            "currency": pa.array(["USD"] * (len(day) + nf)),
            "impressions": np.concatenate([impressions, np.zeros(nf, dtype=np.int64)]),
            "clicks": np.concatenate([clicks, np.zeros(nf, dtype=np.int64)]),
        }
    )
    return tbl.sort_by([("date", "ascending"), ("channel", "ascending"), ("campaign", "ascending")])


def plain_strings(tbl: pa.Table) -> pa.Table:
    """The table with dictionary-encoded columns decoded to plain strings."""
    schema = pa.schema(
        [
            pa.field(f.name, f.type.value_type) if pa.types.is_dictionary(f.type) else f
            for f in tbl.schema
        ]
    )
    return tbl.cast(schema)


def _write_parquet(tbl: pa.Table, path: Path, batch_rows: int = 1_000_000) -> None:
    tmp = path.with_suffix(".parquet.tmp")
    schema = plain_strings(tbl.slice(0, 0)).schema
    with pq.ParquetWriter(tmp, schema, compression="zstd") as w:
        for start in range(0, tbl.num_rows, batch_rows):
            w.write_table(plain_strings(tbl.slice(start, batch_rows)))
    tmp.replace(path)


def write_landing(marketing: dict[str, pa.Table], landing_dir: str | Path) -> list[Path]:
    """Write the landing files: `ad_spend/ad_spend_<first>_<last>.csv`; touchpoints as Parquet
    for all but the last month and a CSV for the last month (as a daily drop would look)."""
    root = Path(landing_dir)
    written: list[Path] = []
    spend = marketing["ad_spend"]
    (root / "ad_spend").mkdir(parents=True, exist_ok=True)
    (root / "touchpoints").mkdir(parents=True, exist_ok=True)
    if spend.num_rows:
        lo, hi = pc.min(spend["date"]).as_py(), pc.max(spend["date"]).as_py()
        p = root / "ad_spend" / f"ad_spend_{lo:%Y%m%d}_{hi:%Y%m%d}.csv"
        pacsv.write_csv(spend, p)
        written.append(p)
    tp = marketing["touchpoints"]
    if tp.num_rows:
        month = pc.utf8_slice_codeunits(tp["occurred_at"], 0, 7)
        last = pc.max(month).as_py()
        older = tp.filter(pc.less(month, last))
        latest = tp.filter(pc.equal(month, last))
        if older.num_rows:
            p = root / "touchpoints" / f"touchpoints_until_{last.replace('-', '')}.parquet"
            _write_parquet(older, p)
            written.append(p)
        p = root / "touchpoints" / f"touchpoints_{last.replace('-', '')}.csv"
        pacsv.write_csv(plain_strings(latest), p)
        written.append(p)
    return written
