"""A synthetic Salesforce org with planted truth (the demo company "salesops demo").

`generate()` samples every object of `sandbox.schema.OBJECTS` from the parameters in
`sandbox.truth`, fully vectorised with numpy/pyarrow (no per-row Python loops), deterministic for a
seed and an end date. `advance()` moves the org forward in time with a plausible change set;
`write_org`/`read_org` persist it; `load_into_duckdb` writes it the way dlt would (tests).

Internally times are float days since the Unix epoch (UTC). The org is a snapshot taken at
`as_of = end 00:00 UTC`: every record and every history row happened strictly before it (so the
last full day of data is `end - 1`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sandbox import truth as T
from sandbox.schema import (
    BOOLEAN,
    COMPETITORS,
    CURRENCIES,
    CURRENCY,
    DATE,
    DATETIME,
    DOUBLE,
    FORECAST_CATEGORIES,
    INT,
    LEAD_SOURCES,
    LOSS_REASONS,
    OBJECTS,
    PERCENT,
    REGIONS,
    SEGMENTS,
    STAGES,
    snake,
)

log = logging.getLogger(__name__)

TS = pa.timestamp("ms", tz="UTC")
MS_PER_DAY = 86_400_000

SCALES: dict[str, dict[str, int]] = {
    "small": {
        "reps": 40,
        "accounts": 1200,
        "opportunities": 2500,
        "leads": 6500,
        "contacts": 3500,
        "activities": 25_000,
    },
    "medium": {
        "reps": 400,
        "accounts": 40_000,
        "opportunities": 100_000,
        "leads": 260_000,
        "contacts": 140_000,
        "activities": 1_000_000,
    },
    "large": {
        "reps": 3000,
        "accounts": 300_000,
        "opportunities": 1_000_000,
        "leads": 2_600_000,
        "contacts": 1_400_000,
        "activities": 10_000_000,
    },
}

# Salesforce key prefixes (first 3 characters of an Id).
ID_PREFIX = {
    "UserRole": "00E",
    "User": "005",
    "Account": "001",
    "Contact": "003",
    "Lead": "00Q",
    "Campaign": "701",
    "CampaignMember": "00v",
    "Opportunity": "006",
    "OpportunityHistory": "008",
    "OpportunityContactRole": "00K",
    "Product2": "01t",
    "OpportunityLineItem": "00k",
    "Task": "00T",
    "Event": "00U",
    "ForecastingQuota": "0J9",
    "CurrencyType": "02c",
    "DatedConversionRate": "04w",
}
ORPHAN_BASE = 900_000_000_000  # Id counters at and above this never exist (orphan defects)

STAGE_NAMES = [s for s, _, _ in STAGES]  # 0-4 open, 5 Closed Won, 6 Closed Lost
STAGE_PROB = np.array([p for _, p, _ in STAGES], dtype=np.float64)
STAGE_FC = np.array([FORECAST_CATEGORIES.index(fc) for _, _, fc in STAGES])
WON, LOST = 5, 6
SEG_ADV = np.array([T.STAGE_ADVANCE[s] for s in SEGMENTS])
SEG_MED = np.array([T.STAGE_DAYS_MEDIAN[s] for s in SEGMENTS])

FIRST_NAMES = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Lena",
    "Hans",
    "Sofia",
    "Lukas",
    "Emma",
    "Noah",
    "Olivia",
    "Liam",
    "Mia",
    "Yuki",
    "Hiro",
    "Aiko",
    "Kenji",
    "Priya",
    "Arjun",
    "Wei",
    "Mei",
    "Chloe",
    "Lucas",
    "Amelie",
]
LAST_NAMES = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Wilson",
    "Anderson",
    "Taylor",
    "Thomas",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Thompson",
    "White",
    "Harris",
    "Clark",
    "Lewis",
    "Walker",
    "Hall",
    "Young",
    "King",
    "Wright",
    "Muller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Dubois",
    "Laurent",
    "Rossi",
    "Bianchi",
    "Tanaka",
    "Suzuki",
    "Sato",
    "Kumar",
    "Sharma",
    "Chen",
    "Wang",
    "Nguyen",
    "Novak",
    "Jansen",
    "Berg",
]
COMPANY_A = [
    "Blue",
    "North",
    "Bright",
    "Silver",
    "Red",
    "Green",
    "Iron",
    "Swift",
    "Prime",
    "Clear",
    "Summit",
    "River",
    "Stone",
    "Cloud",
    "Nova",
    "Apex",
    "Vertex",
    "Polar",
    "Solar",
    "Urban",
    "Delta",
    "Orbit",
    "Pioneer",
    "Harbor",
    "Maple",
    "Cedar",
    "Falcon",
    "Quantum",
    "Atlas",
    "Zen",
]
COMPANY_B = [
    "Systems",
    "Labs",
    "Logistics",
    "Health",
    "Foods",
    "Capital",
    "Works",
    "Dynamics",
    "Media",
    "Networks",
    "Retail",
    "Energy",
    "Analytics",
    "Robotics",
    "Partners",
    "Industries",
    "Software",
    "Finance",
    "Motors",
    "Learning",
]
INDUSTRIES = list(OBJECTS["Account"].get("Industry").picklist)
COUNTRIES = {
    "NA": [("United States", "USD", 0.85), ("Canada", "USD", 0.15)],
    "EMEA": [
        ("Germany", "EUR", 0.3),
        ("United Kingdom", "GBP", 0.3),
        ("France", "EUR", 0.2),
        ("Netherlands", "EUR", 0.1),
        ("Sweden", "EUR", 0.1),
    ],
    "APAC": [
        ("Japan", "JPY", 0.4),
        ("Australia", "USD", 0.3),
        ("Singapore", "USD", 0.2),
        ("India", "USD", 0.1),
    ],
}
RATE_BASE = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79, "JPY": 148.0}
RATE_VOL = {"USD": 0.0, "EUR": 0.015, "GBP": 0.015, "JPY": 0.02}
PRODUCTS = [
    ("Platform Core", "Platform", 9_000.0),
    ("Platform Pro", "Platform", 30_000.0),
    ("Platform Enterprise", "Platform", 120_000.0),
    ("Analytics Add-on", "Add-on", 4_000.0),
    ("Security Add-on", "Add-on", 6_000.0),
    ("API Add-on", "Add-on", 3_000.0),
    ("Storage Add-on", "Add-on", 2_000.0),
    ("Onboarding Services", "Services", 5_000.0),
    ("Training", "Services", 2_500.0),
    ("Premium Support", "Services", 8_000.0),
    ("Custom Integration", "Services", 15_000.0),
    ("Data Migration", "Services", 7_000.0),
]
# Campaign channels (marketing channels that run Salesforce campaigns) and their Campaign.Type.
CAMPAIGN_CHANNELS = {
    "paid_search": ("Paid Search", "Paid Search"),
    "paid_social": ("Paid Social", "Paid Social"),
    "display": ("Content", "Display"),
    "email": ("Email", "Nurture Email"),
    "webinar": ("Webinar", "Webinar"),
    "events": ("Event", "Field Event"),
    "partner": ("Content", "Partner Co-marketing"),
}
LEAD_SOURCE_CHANNEL = {
    "Web": "organic_search",
    "Paid Search": "paid_search",
    "Paid Social": "paid_social",
    "Email": "email",
    "Webinar": "webinar",
    "Event": "events",
    "Partner": "partner",
    "Outbound": None,
    "Referral": "referral",
}


@dataclass
class Org:
    """A Salesforce org snapshot: one Arrow table per SObject (schema field order and types),
    the planted truth, and the instant the snapshot was taken."""

    tables: dict[str, pa.Table]
    truth: dict[str, Any] = field(default_factory=dict)
    as_of: datetime = field(default_factory=lambda: datetime.now(UTC))

    def counts(self) -> dict[str, int]:
        return {k: t.num_rows for k, t in self.tables.items()}


# ----------------------------------------------------------------------------- arrow helpers
def arrow_type(ftype: str) -> pa.DataType:
    if ftype == BOOLEAN:
        return pa.bool_()
    if ftype in (CURRENCY, DOUBLE, PERCENT):
        return pa.float64()
    if ftype == INT:
        return pa.int64()
    if ftype == DATE:
        return pa.date32()
    if ftype == DATETIME:
        return TS
    return pa.string()


def arrow_schema(obj: str) -> pa.Schema:
    return pa.schema([(f.name, arrow_type(f.type)) for f in OBJECTS[obj].fields])


def _ts(t: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    ms = np.floor(np.nan_to_num(np.asarray(t, dtype=np.float64)) * MS_PER_DAY).astype(np.int64)
    return pa.array(ms, type=TS, mask=mask)


def _date(day: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    d = np.floor(np.nan_to_num(np.asarray(day, dtype=np.float64))).astype(np.int32)
    return pa.array(d, type=pa.date32(), mask=mask)


def _ids(obj: str, start: int, n: int) -> pa.Array:
    nums = pa.array(np.arange(start, start + n, dtype=np.int64)).cast(pa.string())
    return pc.binary_join_element_wise(
        ID_PREFIX[obj], pc.utf8_lpad(nums, width=15, padding="0"), ""
    )


def _pick(values: list, idx: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    arr = pa.array(values).take(pa.array(np.asarray(idx, dtype=np.int64)))
    if mask is not None:
        arr = pc.if_else(pa.array(mask), pa.nulls(len(arr), arr.type), arr)
    return arr


def _take(arr: pa.Array, idx: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """arr[idx] with nulls where valid is False (idx there may be anything)."""
    idx = np.asarray(idx, dtype=np.int64)
    if valid is None:
        return arr.take(pa.array(idx))
    return arr.take(pa.array(np.where(valid, idx, 0), mask=~valid))


def _cat(*parts: Any) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _num_str(x: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(x, dtype=np.int64)).cast(pa.string())


def _table(obj: str, cols: dict[str, Any], n: int) -> pa.Table:
    """Build an object table in schema order; missing nullable columns become nulls."""
    arrays = []
    for f in OBJECTS[obj].fields:
        typ = arrow_type(f.type)
        v = cols.get(f.name)
        if v is None:
            if f.name == "IsDeleted":
                v = pa.array(np.zeros(n, dtype=bool))
            elif not f.nillable:
                raise ValueError(f"{obj}.{f.name} is required but was not generated")
            else:
                v = pa.nulls(n, typ)
        elif not isinstance(v, pa.Array | pa.ChunkedArray):
            v = pa.array(v, type=typ)
        if v.type != typ:
            v = v.cast(typ)
        if len(v) != n:
            raise ValueError(f"{obj}.{f.name}: {len(v)} values for {n} rows")
        arrays.append(v)
    return pa.Table.from_arrays(arrays, schema=arrow_schema(obj))


def _audit(created: np.ndarray, modified: np.ndarray | None = None) -> dict[str, pa.Array]:
    modified = created if modified is None else np.maximum(modified, created)
    return {
        "CreatedDate": _ts(created),
        "LastModifiedDate": _ts(modified),
        "SystemModstamp": _ts(modified),
    }


def _group_ffill(values: np.ndarray, has: np.ndarray) -> np.ndarray:
    """Forward-fill `values` where `has` is False (rows grouped, each group starts with has)."""
    idx = np.where(has, np.arange(len(values)), 0)
    np.maximum.accumulate(idx, out=idx)
    return values[idx]


def _choice(rng: np.random.Generator, n: int, probs: dict | list) -> np.ndarray:
    p = np.array(list(probs.values()) if isinstance(probs, dict) else probs, dtype=np.float64)
    return np.searchsorted(np.cumsum(p / p.sum()), rng.random(n), side="right").clip(0, len(p) - 1)


# ----------------------------------------------------------------------------- the generator
def _resolve_scale(scale: str | dict) -> tuple[str, dict[str, int]]:
    if isinstance(scale, dict):
        unknown = set(scale) - set(SCALES["small"])
        if unknown:
            raise ValueError(f"unknown count keys {sorted(unknown)}; use {sorted(SCALES['small'])}")
        return "custom", {**SCALES["small"], **{k: int(v) for k, v in scale.items()}}
    if scale not in SCALES:
        raise ValueError(
            f"scale must be one of {sorted(SCALES)} or a dict of counts, got {scale!r}"
        )
    return scale, dict(SCALES[scale])


def _sample_days(rng: np.random.Generator, n: int, day0: int, day1: int, start_day: int):
    """n times (float days) in [day0, day1) with density creation_weight, business hours."""
    days = np.arange(day0, day1)
    cw = np.cumsum(T.creation_weight(days, start_day))
    d = days[np.searchsorted(cw / cw[-1], rng.random(n), side="right").clip(0, len(days) - 1)]
    return d + 0.30 + 0.45 * rng.random(n)  # ~07:00-18:00 UTC


def _funnel(rng, seg, stage0, t0, min_exit=None):
    """Run opportunities through the stage set from stage0 entered at t0.

    Returns (entry[n,5] with NaN where not reached, last open stage, close time, won)."""
    n = len(seg)
    rows = np.arange(n)
    dur = SEG_MED[seg] * np.exp(T.STAGE_DAYS_SIGMA * rng.standard_normal((n, 5)))
    go = rng.random((n, 5)) < SEG_ADV[seg]
    if min_exit is not None:  # already in the stage: leave no earlier than min_exit
        cur = dur[rows, stage0]
        late = t0 + cur < min_exit
        extra = rng.exponential(SEG_MED[seg, stage0] / 2)
        dur[rows, stage0] = np.where(late, min_exit - t0 + extra, cur)
    entry = np.full((n, 5), np.nan)
    entry[rows, stage0] = t0
    last = np.array(stage0, dtype=np.int64)
    close = np.full(n, np.nan)
    won = np.zeros(n, dtype=bool)
    for j in range(5):
        at = last == j
        at &= np.isnan(close)
        adv = at & go[:, j]
        lost = at & ~go[:, j]
        close[lost] = entry[lost, j] + dur[lost, j] * T.LOST_DWELL_FACTOR
        if j < 4:
            entry[adv, j + 1] = entry[adv, j] + dur[adv, j]
            last[adv] = j + 1
        else:
            close[adv] = entry[adv, j] + dur[adv, j]
            won[adv] = True
    return entry, last, close, won


def _pull_in(rng, entry, close, won, created, qstarts, not_before=-np.inf):
    """Quarter-end pull-in of won deals (see truth.PULL_*); rescales stage entry times."""
    cd = np.floor(close).astype(np.int64)
    qs = qstarts[np.searchsorted(qstarts, cd, side="right") - 1]
    new = qs - T.PULL_TARGET_DAYS + T.PULL_TARGET_DAYS * rng.random(len(close))
    pick = rng.random(len(close)) < T.PULL_PROB
    cand = won & (cd - qs < T.PULL_WINDOW_DAYS) & pick & (new > created + 1) & (new > not_before)
    f = np.where(cand, (new - created) / np.maximum(close - created, 1e-9), 1.0)
    entry = created[:, None] + (entry - created[:, None]) * f[:, None]
    close = np.where(cand, new, close)
    return entry, close, cand


def _rep_capacity(days: np.ndarray, hire: np.ndarray, term: np.ndarray) -> np.ndarray:
    """Productivity (0..1) of each rep on each day: ramp after hire, zero outside employment."""
    tenure = days[:, None] - hire[None, :]
    ramp = np.clip(T.RAMP_START + (1 - T.RAMP_START) * tenure / T.RAMP_DAYS, 0.0, 1.0)
    return ramp * (tenure >= 0) * (days[:, None] < term[None, :])


def _pick_owner(rng, cell, t, rep_cell, hire, term, day0, day1):
    """Owner among the reps of each (region, segment) cell, weighted by productivity at t."""
    owner = np.zeros(len(cell), dtype=np.int64)
    days = np.arange(day0, day1)
    nd = len(days)
    for c in np.unique(cell):
        reps = np.flatnonzero(rep_cell == c)
        items = np.flatnonzero(cell == c)
        w = _rep_capacity(days, hire[reps], term[reps])
        cum = np.cumsum(w, axis=1)
        tot = cum[:, -1:]
        cum = cum / np.where(tot > 0, tot, 1.0)
        flat = (cum + np.arange(nd)[:, None]).ravel()
        d = np.clip(np.floor(t[items]).astype(np.int64) - day0, 0, nd - 1)
        pos = np.searchsorted(flat, d + rng.random(len(items)) * 0.999999, side="right")
        owner[items] = reps[np.clip(pos - d * len(reps), 0, len(reps) - 1)]
    return owner


def generate(
    scale: str | dict = "small",
    seed: int = 42,
    end: date | str | None = None,
    years: float = 3.0,
    defect_rate: float = 0.01,
) -> Org:
    """Generate a demo org: `years` of history (plus a warm-up) ending at `end` (exclusive,
    default today UTC), deterministic for (scale, seed, end, years, defect_rate)."""
    t_start = time.perf_counter()
    scale_name, n = _resolve_scale(scale)
    if end is None:
        end = datetime.now(UTC).date()
    elif isinstance(end, str):
        end = date.fromisoformat(end)
    elif isinstance(end, datetime):
        end = end.date()
    if not 0 <= defect_rate <= 0.5:
        raise ValueError(f"defect_rate must be in [0, 0.5], got {defect_rate}")
    rng = np.random.default_rng(seed)
    end_day = T.day_of(end)
    start_day = end_day - int(round(years * 365.25))
    gen_day = start_day - int(round(T.WARMUP_YEARS * 365.25))
    t_end = float(end_day)
    g = _Gen(rng, n, gen_day, start_day, end_day, t_end)
    steps = [
        g.users,
        g.currencies,
        g.accounts,
        g.opportunities,
        g.leads,
        g.contacts,
        g.campaigns,
        g.products_and_items,
        g.contact_roles,
        g.activities,
        g.quotas,
    ]
    for step in steps:
        t_step = time.perf_counter()
        step()
        log.debug("generate: %s done in %.1f s", step.__name__, time.perf_counter() - t_step)
    tables = g.tables()
    del g.hist, g.lead, g.ct
    pa.default_memory_pool().release_unused()  # hand freed intermediates back to the OS
    defects = _inject_defects(rng, tables, defect_rate, t_end)
    elapsed = time.perf_counter() - t_start
    truth = g.truth(scale_name, seed, end, years, defect_rate, defects, tables)
    truth["generation_seconds"] = round(elapsed, 2)
    log.info(
        "generated %s org (seed %s, end %s) in %.1f s: %s",
        scale_name,
        seed,
        end,
        elapsed,
        {k: v.num_rows for k, v in tables.items()},
    )
    return Org(tables=tables, truth=truth, as_of=datetime(end.year, end.month, end.day, tzinfo=UTC))


class _Gen:
    """Holds the intermediate numpy state of one generation run (one method per object)."""

    def __init__(self, rng, n, gen_day, start_day, end_day, t_end):
        self.rng, self.n = rng, n
        self.gen_day, self.start_day, self.end_day, self.t_end = gen_day, start_day, end_day, t_end
        self.t: dict[str, pa.Table] = {}
        self.qstarts = T.quarter_starts(gen_day, end_day)

    # ------------------------------------------------------------------ users and roles
    def users(self) -> None:
        rng, n_reps = self.rng, max(self.n["reps"], 2 * len(REGIONS) * len(SEGMENTS))
        cells = [(r, s) for r in range(len(REGIONS)) for s in range(len(SEGMENTS))]
        # two long-tenured reps per cell, the rest allocated by expected workload
        w = np.array([T.REGION_MIX[REGIONS[r]] * T.SEGMENT_MIX[SEGMENTS[s]] for r, s in cells])
        base = np.repeat(np.arange(len(cells)), 2)
        rest = _choice(rng, n_reps - len(base), w)
        cell = np.concatenate([base, rest])
        stalwart = np.arange(n_reps) < len(base)
        n_hist = self.end_day - self.gen_day
        hire = np.where(
            stalwart,
            self.gen_day - rng.uniform(100, 1500, n_reps),
            np.where(
                rng.random(n_reps) < 0.35,
                self.gen_day - rng.uniform(30, 1200, n_reps),
                _sample_days(rng, n_reps, self.gen_day, self.end_day, self.start_day),
            ),
        )
        hire = np.floor(hire)
        tenure = rng.exponential(T.REP_MEAN_TENURE_YEARS * 365.25, n_reps)
        term = np.maximum(hire + tenure, self.gen_day + 60 + rng.uniform(0, n_hist / 4, n_reps))
        term = np.where(stalwart | (term >= self.end_day), np.inf, np.floor(term))
        order = np.argsort(hire, kind="stable")
        cell, hire, term, stalwart = cell[order], hire[order], term[order], stalwart[order]
        self.rep_cell, self.rep_hire, self.rep_term = cell, hire, term
        self.rep_region = np.array([cells[c][0] for c in cell])
        self.rep_segment = np.array([cells[c][1] for c in cell])
        self.rep_stalwart = stalwart
        # managers: one per region per ~10 reps, then the VP
        per_region = np.bincount(self.rep_region, minlength=len(REGIONS))
        n_mgr = np.maximum(1, per_region // 10)
        mgr_region = np.repeat(np.arange(len(REGIONS)), n_mgr)
        nm = len(mgr_region)
        mgr_first = np.concatenate([[0], np.cumsum(n_mgr)[:-1]])
        rep_mgr = mgr_first[self.rep_region] + np.floor(
            rng.random(n_reps) * n_mgr[self.rep_region]
        ).astype(np.int64)
        n_users = 1 + nm + n_reps
        self.user_ids = _ids("User", 1, n_users)
        self.rep_user = np.arange(1 + nm, n_users)  # user index of each rep
        self.mgr_user = np.arange(1, 1 + nm)
        self.n_users = n_users
        # roles: VP, regional manager per region, AE per region
        role_names = (
            ["VP Sales"]
            + [f"Regional Sales Manager {r}" for r in REGIONS]
            + [f"Account Executive {r}" for r in REGIONS]
        )
        role_ids = _ids("UserRole", 1, len(role_names))
        parent = np.array([-1, 0, 0, 0, 1, 2, 3])
        role_created = np.full(len(role_names), self.gen_day - 400.0)
        self.t["UserRole"] = _table(
            "UserRole",
            {
                "Id": role_ids,
                "Name": pa.array(role_names),
                "DeveloperName": pa.array([r.replace(" ", "_") for r in role_names]),
                "ParentRoleId": _take(role_ids, parent, parent >= 0),
                **_audit(role_created),
            },
            len(role_names),
        )
        first = rng.integers(0, len(FIRST_NAMES), n_users)
        last = rng.integers(0, len(LAST_NAMES), n_users)
        fn, ln = _pick(FIRST_NAMES, first), _pick(LAST_NAMES, last)
        local = pc.utf8_lower(_cat(fn, ".", ln, _num_str(np.arange(n_users))))
        region = np.concatenate([[-1], mgr_region, self.rep_region])
        segment = np.concatenate([[-1], np.full(nm, -1), self.rep_segment])
        role = np.concatenate([[0], 1 + mgr_region, 4 + self.rep_region])
        manager = np.concatenate([[-1], np.zeros(nm, dtype=np.int64), self.mgr_user[rep_mgr]])
        u_hire = np.concatenate(
            [[self.gen_day - 1600.0], self.gen_day - rng.uniform(200, 1500, nm), hire]
        )
        u_term = np.concatenate([[np.inf], np.full(nm, np.inf), term])
        terminated = np.isfinite(u_term)
        title = np.concatenate([[0], np.full(nm, 1), 2 + self.rep_segment])
        titles = [
            "VP of Sales",
            "Regional Sales Manager",
            "Account Executive, SMB",
            "Account Executive, Mid-Market",
            "Account Executive, Enterprise",
        ]
        created = u_hire - 7 + 0.4
        modified = np.where(terminated, np.nan_to_num(u_term, posinf=0) + 0.5, created)
        self.user_created = created
        self.t["User"] = _table(
            "User",
            {
                "Id": self.user_ids,
                "Username": _cat(local, "@salesops-demo.example.sandbox"),
                "Name": _cat(fn, " ", ln),
                "FirstName": fn,
                "LastName": ln,
                "Email": _cat(local, "@salesops-demo.example"),
                "Title": _pick(titles, title),
                "IsActive": pa.array(~terminated),
                "UserRoleId": _take(role_ids, role),
                "ManagerId": _take(self.user_ids, manager, manager >= 0),
                "Region__c": _pick(REGIONS, np.maximum(region, 0), region < 0),
                "Segment__c": _pick(SEGMENTS, np.maximum(segment, 0), segment < 0),
                "Hire_Date__c": _date(u_hire),
                "Termination_Date__c": _date(np.nan_to_num(u_term, posinf=0), ~terminated),
                **_audit(created, modified),
            },
            n_users,
        )
        self.rep_logs = rng.random(n_reps) >= T.NON_LOGGING_REP_SHARE
        self.rep_logs[stalwart] = True

    def owner_of(self, seg, region, t):
        """Rep index for items of (segment, region) created at t."""
        cell = region * len(SEGMENTS) + seg
        return _pick_owner(
            self.rng,
            cell,
            t,
            self.rep_cell,
            self.rep_hire,
            self.rep_term,
            self.gen_day - 1,
            self.end_day + 400,
        )

    # ------------------------------------------------------------------ currencies
    def currencies(self) -> None:
        rng = self.rng
        m0 = np.datetime64(self.gen_day, "D").astype("datetime64[M]")
        m1 = np.datetime64(self.end_day, "D").astype("datetime64[M]")
        months = np.arange(m0, m1 + 1)
        nm = len(months)
        self.month_days = months.astype("datetime64[D]").astype(np.int64)
        rates = {}
        for cur in CURRENCIES:
            steps = rng.standard_normal(nm) * RATE_VOL[cur]
            rates[cur] = np.round(RATE_BASE[cur] * np.exp(np.cumsum(steps)), 6)
        self.rates = rates
        nc = len(CURRENCIES)
        cur_idx = np.repeat(np.arange(nc), nm)
        start = np.tile(self.month_days, nc)
        nxt = np.tile(np.concatenate([self.month_days[1:], [T.day_of(date(9999, 12, 31))]]), nc)
        created = start - 3 + 0.5
        self.t["DatedConversionRate"] = _table(
            "DatedConversionRate",
            {
                "Id": _ids("DatedConversionRate", 1, nc * nm),
                "IsoCode": _pick(CURRENCIES, cur_idx),
                "ConversionRate": np.concatenate([rates[c] for c in CURRENCIES]),
                "StartDate": _date(start),
                "NextStartDate": _date(nxt),
                **_audit(created),
            },
            nc * nm,
        )
        self.t["CurrencyType"] = _table(
            "CurrencyType",
            {
                "Id": _ids("CurrencyType", 1, nc),
                "IsoCode": pa.array(CURRENCIES),
                "ConversionRate": np.array([rates[c][-1] for c in CURRENCIES]),
                "DecimalPlaces": np.array([0 if c == "JPY" else 2 for c in CURRENCIES]),
                "IsActive": np.ones(nc, dtype=bool),
                "IsCorporate": np.array([c == "USD" for c in CURRENCIES]),
                **_audit(np.full(nc, self.gen_day - 400.0), np.full(nc, self.month_days[-1] - 2.5)),
            },
            nc,
        )

    def rate_at(self, cur: np.ndarray, day: np.ndarray) -> np.ndarray:
        m = np.clip(
            np.searchsorted(self.month_days, np.floor(day), side="right") - 1,
            0,
            len(self.month_days) - 1,
        )
        table = np.stack([self.rates[c] for c in CURRENCIES])
        return table[cur, m]

    # ------------------------------------------------------------------ accounts
    def accounts(self) -> None:
        rng, na = self.rng, self.n["accounts"]
        seg = _choice(rng, na, T.SEGMENT_MIX)
        region = _choice(rng, na, T.REGION_MIX)
        country = np.zeros(na, dtype=np.int64)
        cur = np.zeros(na, dtype=np.int64)
        names: list[str] = []
        curs: list[int] = []
        offset = 0
        for r, reg in enumerate(REGIONS):
            sel = region == r
            ch = _choice(rng, int(sel.sum()), [p for _, _, p in COUNTRIES[reg]])
            country[sel] = offset + ch
            cur[sel] = np.array([CURRENCIES.index(c) for _, c, _ in COUNTRIES[reg]])[ch]
            names += [c for c, _, _ in COUNTRIES[reg]]
            curs += [CURRENCIES.index(c) for _, c, _ in COUNTRIES[reg]]
            offset += len(COUNTRIES[reg])
        self.acc_seg, self.acc_region, self.acc_cur = seg, region, cur
        self.acc_country, self.country_names = country, names
        a = rng.integers(0, len(COMPANY_A), na)
        b = rng.integers(0, len(COMPANY_B), na)
        self.acc_name = _cat(
            _pick(COMPANY_A, a), " ", _pick(COMPANY_B, b), " ", _num_str(rng.integers(1, 1000, na))
        )
        self.acc_domain = pc.utf8_lower(
            _cat(_pick(COMPANY_A, a), _pick(COMPANY_B, b), _num_str(np.arange(na)), ".example.com")
        )
        emp_med = np.array([60, 600, 8000])[seg]
        self.acc_emp = np.maximum(1, np.round(emp_med * np.exp(0.6 * rng.standard_normal(na))))
        self.acc_owner = self.owner_of(seg, region, np.full(na, self.t_end - 1))
        # accounts in each (segment, region) cell, for opportunity sampling
        cell = region * len(SEGMENTS) + seg
        self.acc_by_cell = [np.flatnonzero(cell == c) for c in range(len(REGIONS) * len(SEGMENTS))]

    # ------------------------------------------------------------------ opportunities
    def opportunities(self) -> None:
        rng, no = self.rng, self.n["opportunities"]
        created = np.sort(_sample_days(rng, no, self.gen_day, self.end_day, self.start_day))
        seg = _choice(rng, no, T.SEGMENT_MIX)
        region = _choice(rng, no, T.REGION_MIX)
        cell = region * len(SEGMENTS) + seg
        acc = np.zeros(no, dtype=np.int64)
        for c, accs in enumerate(self.acc_by_cell):
            sel = np.flatnonzero(cell == c)
            if len(accs) == 0:  # tiny orgs: no account in this cell, use any account
                accs = np.arange(len(self.acc_seg))
            acc[sel] = accs[rng.integers(0, len(accs), len(sel))]
        seg, region = self.acc_seg[acc], self.acc_region[acc]
        cell = region * len(SEGMENTS) + seg
        entry, last, close, won = _funnel(rng, seg, np.zeros(no, dtype=np.int64), created)
        entry, close, pulled = _pull_in(rng, entry, close, won, created, self.qstarts)
        closed = close < self.t_end
        owner = self.owner_of(seg, region, created)
        # a rep who left hands open deals to a long-tenured rep of the same cell
        stal = [np.flatnonzero(self.rep_stalwart & (self.rep_cell == c)) for c in range(9)]
        leaves = self.rep_term[owner] < np.minimum(close, self.t_end)
        for c in range(9):
            sel = np.flatnonzero(leaves & (cell == c))
            owner[sel] = stal[c][rng.integers(0, len(stal[c]), len(sel))]
        self.opp = dict(
            created=created,
            seg=seg,
            region=region,
            acc=acc,
            entry=entry,
            last=last,
            close=close,
            won=won & closed,
            closed=closed,
            owner=owner,
            pulled=pulled,
        )
        self._opportunity_history()

    def _opportunity_history(self) -> None:
        rng, o, te = self.rng, self.opp, self.t_end
        no = len(o["created"])
        c, close, closed = o["created"], o["close"], o["closed"]
        seg = o["seg"]
        lim = np.where(closed, close, te)  # events strictly before this
        span = np.maximum(lim - c, 1e-6)
        cur = self.acc_cur[o["acc"]]
        # final close date and amounts in deal currency
        cycle_med = SEG_MED[seg].sum(axis=1)
        planned = c + cycle_med * np.exp(0.3 * rng.standard_normal(no))
        open_close = np.floor(np.maximum(planned, te + rng.uniform(3, 45, no)))
        close_day = np.where(closed, np.floor(close), open_close)
        usd = np.array([T.AMOUNT_MEDIAN_USD[s] for s in SEGMENTS])[seg] * np.exp(
            T.AMOUNT_SIGMA * rng.standard_normal(no)
        )
        rate = self.rate_at(cur, close_day)
        amount = np.round(usd * rate, 2)
        o.update(cur=cur, close_day=close_day, amount=amount, usd=usd)
        # --- event rows: kind 0 create, 1 stage, 2 push, 3 amount, 4 forecast override, 5 close
        stage_mask = ~np.isnan(o["entry"][:, 1:]) & (o["entry"][:, 1:] < lim[:, None])
        s_opp, s_j = np.nonzero(stage_mask)
        s_t = o["entry"][s_opp, s_j + 1]
        k_push = rng.poisson(np.array([T.PUSHES_MEAN[s] for s in SEGMENTS])[seg])
        p_opp = np.repeat(np.arange(no), k_push)
        p_t = c[p_opp] + rng.random(len(p_opp)) * span[p_opp]
        k_amt = rng.poisson(T.AMOUNT_CHANGES_MEAN, no)
        a_opp = np.repeat(np.arange(no), k_amt)
        a_t = c[a_opp] + rng.random(len(a_opp)) * span[a_opp]
        k_fc = rng.poisson(T.FORECAST_OVERRIDES_MEAN, no)
        f_opp = np.repeat(np.arange(no), k_fc)
        f_t = c[f_opp] + rng.random(len(f_opp)) * span[f_opp]
        x_opp = np.flatnonzero(closed)
        parts = [  # (opp, t, kind, stage)
            (np.arange(no), c, 0, np.zeros(no, dtype=np.int64)),
            (s_opp, s_t, 1, s_j + 1),
            (p_opp, p_t, 2, None),
            (a_opp, a_t, 3, None),
            (f_opp, f_t, 4, None),
            (x_opp, close[x_opp], 5, np.where(o["won"][x_opp], WON, LOST)),
        ]
        e_opp = np.concatenate([p[0] for p in parts])
        e_t = np.concatenate([p[1] for p in parts])
        e_kind = np.concatenate([np.full(len(p[0]), p[2], dtype=np.int8) for p in parts])
        e_stage = np.concatenate(
            [p[3] if p[3] is not None else np.full(len(p[0]), -1) for p in parts]
        )
        order = np.lexsort((e_kind, e_t, e_opp))
        e_opp, e_t, e_kind, e_stage = e_opp[order], e_t[order], e_kind[order], e_stage[order]
        ne = len(e_opp)
        first = np.searchsorted(e_opp, np.arange(no))
        last_row = np.append(first[1:], ne) - 1
        # close dates: each push sets the date the next push (or the close) will move it from
        is_push = e_kind == 2
        push_idx = np.flatnonzero(is_push)
        pk = np.zeros(ne, dtype=np.int64)
        pk[push_idx] = 1
        rank_in_opp = np.cumsum(pk) - np.cumsum(pk)[first][e_opp]  # pushes up to and incl row
        final_planned = np.where(closed, close + rng.uniform(0, 10, no), open_close)
        # next push time per opp row (for the create row and each push row)
        push_t_sorted = e_t[push_idx]
        push_opp = e_opp[push_idx]
        nxt_same = np.append(push_opp[1:] == push_opp[:-1], False)
        nxt_t = np.where(nxt_same, np.append(push_t_sorted[1:], 0), np.nan)
        cd_val = np.full(ne, np.nan)
        cd_push = np.where(
            np.isnan(nxt_t), final_planned[push_opp], nxt_t + rng.uniform(1, 10, len(push_idx))
        )
        cd_val[push_idx] = cd_push
        # create row: the first push time + U(1,10), or the final planned date without pushes
        first_push = np.full(no, np.nan)
        has_push = k_push > 0
        fp_rows = push_idx[np.concatenate([[True], ~nxt_same[:-1]])] if len(push_idx) else []
        first_push[e_opp[fp_rows]] = e_t[fp_rows]
        cd_val[first] = np.where(has_push, first_push + rng.uniform(1, 10, no), final_planned)
        cd_val[first[closed]] = np.where(
            has_push[closed],
            cd_val[first[closed]],
            close[closed] + rng.uniform(0, 10, int(closed.sum())),
        )
        close_rows = np.flatnonzero(e_kind == 5)
        cd_val[close_rows] = close[e_opp[close_rows]]
        has_cd = ~np.isnan(cd_val)
        cd = np.floor(_group_ffill(cd_val, has_cd))
        # monotone within each opportunity's pushes: a push moves the date out (by >= 1 day)
        offset = e_opp.astype(np.float64) * 1e6
        mono = np.maximum.accumulate(
            np.where(is_push | (e_kind == 0), cd + offset + rank_in_opp, -np.inf)
        )
        cd = np.where(is_push, mono - offset, cd)
        cd = np.where(is_push | (e_kind == 0), cd, np.nan)
        cd[close_rows] = np.floor(close[e_opp[close_rows]])
        cd = _group_ffill(cd, ~np.isnan(cd))
        # open deals end on their open close date
        lr_open = last_row[~closed]
        cd[lr_open] = np.maximum(cd[lr_open], open_close[~closed])
        o["close_day"] = np.where(closed, np.floor(close), cd[last_row])
        # amounts: each revision lands on the next value; the last equals the final amount
        is_amt = e_kind == 3
        amt_idx = np.flatnonzero(is_amt)
        amt_opp = e_opp[amt_idx]
        last_amt = np.append(amt_opp[1:] != amt_opp[:-1], True)
        amt_val = np.full(ne, np.nan)
        noise = np.round(amount[amt_opp] * rng.uniform(0.7, 1.3, len(amt_idx)), 2)
        amt_val[amt_idx] = np.where(last_amt, amount[amt_opp], noise)
        amt_val[first] = np.where(
            k_amt > 0, np.round(amount * rng.uniform(0.7, 1.3, no), 2), amount
        )
        amt_val[close_rows] = amount[e_opp[close_rows]]
        amt = _group_ffill(amt_val, ~np.isnan(amt_val))
        # stage and forecast category
        stage = _group_ffill(e_stage, e_stage >= 0)
        fc_val = np.where(e_stage >= 0, STAGE_FC[np.maximum(e_stage, 0)], -1)
        is_fc = e_kind == 4
        base_fc = STAGE_FC[stage[is_fc]]
        up = rng.random(int(is_fc.sum())) < 0.6
        # Pipeline -> Best Case, Best Case -> Commit / Pipeline, Commit -> Best Case
        fc_val[is_fc] = np.where(
            base_fc == 0, np.where(up, 1, 4), np.where(base_fc == 1, np.where(up, 2, 0), 1)
        )
        fc = _group_ffill(fc_val, fc_val >= 0)
        # drop rows that change nothing (a push or revision equal to the previous state)
        prev_same = np.zeros(ne, dtype=bool)
        prev_same[1:] = (
            (e_opp[1:] == e_opp[:-1])
            & (stage[1:] == stage[:-1])
            & (amt[1:] == amt[:-1])
            & (cd[1:] == cd[:-1])
            & (fc[1:] == fc[:-1])
        )
        keep = ~prev_same
        h = dict(
            opp=e_opp[keep],
            t=e_t[keep],
            stage=stage[keep],
            amount=amt[keep],
            close_day=cd[keep],
            fc=fc[keep],
        )
        self.hist = h
        hl = np.append(np.flatnonzero(h["opp"][1:] != h["opp"][:-1]), len(h["opp"]) - 1)
        o["stage"] = h["stage"][hl]
        o["fc"] = h["fc"][hl]
        o["amount_final"] = h["amount"][hl]
        o["close_day"] = h["close_day"][hl]
        o["modified"] = h["t"][hl]

    # ------------------------------------------------------------------ leads
    def leads(self) -> None:
        rng, o = self.rng, self.opp
        nl, no = self.n["leads"], len(o["created"])
        p = [
            1 - T.LEAD_P_MQL,
            T.LEAD_P_MQL * (1 - T.LEAD_P_SQL),
            T.LEAD_P_MQL * T.LEAD_P_SQL * (1 - T.LEAD_P_CONVERT),
            T.LEAD_P_MQL * T.LEAD_P_SQL * T.LEAD_P_CONVERT,
        ]
        depth = _choice(rng, nl, p)
        conv_l = np.flatnonzero(depth == 3)
        cap = int(0.8 * no)
        if len(conv_l) > cap:  # more converted leads than opportunities can absorb
            log.warning("capping converted leads at %d (of %d)", cap, len(conv_l))
            depth[conv_l[cap:]] = 2
            conv_l = conv_l[:cap]
        nc = len(conv_l)
        lead_opp = np.full(nl, -1, dtype=np.int64)
        opp_from_lead = np.sort(rng.choice(no, nc, replace=False))
        lead_opp[conv_l] = opp_from_lead
        is_conv = depth == 3
        seg = _choice(rng, nl, T.SEGMENT_MIX)
        region = _choice(rng, nl, T.REGION_MIX)
        created = _sample_days(rng, nl, self.gen_day, self.end_day, self.start_day)
        d_mql = rng.exponential(T.LEAD_DAYS_TO_MQL, nl)
        d_sql = rng.exponential(T.LEAD_DAYS_TO_SQL, nl)
        d_conv = rng.exponential(T.LEAD_DAYS_TO_CONVERT, nl)
        oc = o["created"][lead_opp[conv_l]]
        created[conv_l] = oc - d_conv[conv_l] - d_sql[conv_l] - d_mql[conv_l]
        seg[conv_l] = o["seg"][lead_opp[conv_l]]
        region[conv_l] = o["region"][lead_opp[conv_l]]
        mql_t = created + d_mql
        sql_t = mql_t + d_sql
        conv_t = np.where(is_conv, o["created"][np.maximum(lead_opp, 0)], np.nan)
        te = self.t_end
        reached = ((depth >= 1) & (mql_t < te)).astype(np.int64) + ((depth >= 2) & (sql_t < te))
        reached[is_conv] = 3
        step_t = np.stack([created, mql_t, sql_t, np.nan_to_num(conv_t)], axis=1)
        last_t = step_t[np.arange(nl), reached]
        final = (reached == depth) & ~is_conv
        dq_t = last_t + 20 + rng.exponential(30, nl)
        disq = final & (dq_t < te) & (rng.random(nl) < 0.75)
        status = np.select(
            [is_conv, disq, reached == 2, reached == 1, te - created < 7],
            [4, 5, 3, 2, 0],
            default=1,
        )  # LEAD_STATUSES order
        modified = np.where(disq, dq_t, last_t)
        owner = self.owner_of(seg, region, created)
        owner[conv_l] = o["owner"][lead_opp[conv_l]]
        source = _choice(rng, nl, T.LEAD_SOURCE_MIX)
        # ids in creation order
        order = np.argsort(created, kind="stable")
        inv = np.empty(nl, dtype=np.int64)
        inv[order] = np.arange(nl)
        L = dict(
            created=created,
            seg=seg,
            region=region,
            mql_t=mql_t,
            sql_t=sql_t,
            conv_t=conv_t,
            reached=reached,
            status=status,
            modified=modified,
            owner=owner,
            source=source,
            is_conv=is_conv,
            opp=lead_opp,
            depth=depth,
        )
        L = {k: v[order] for k, v in L.items()}
        self.lead = L
        o["lead"] = np.full(no, -1, dtype=np.int64)
        o["lead"][lead_opp[conv_l]] = inv[conv_l]
        o["source"] = np.where(
            o["lead"] >= 0, L["source"][np.maximum(o["lead"], 0)], LEAD_SOURCES.index("Outbound")
        )
        o["type"] = np.where(o["lead"] >= 0, 0, _choice(rng, no, [0.25, 0.5, 0.25]))
        fn = rng.integers(0, len(FIRST_NAMES), nl)
        ln = rng.integers(0, len(LAST_NAMES), nl)
        L["first"], L["last"] = fn, ln
        a = rng.integers(0, len(COMPANY_A), nl)
        b = rng.integers(0, len(COMPANY_B), nl)
        conv_acc = o["acc"][np.maximum(L["opp"], 0)]
        company = pc.if_else(
            pa.array(L["is_conv"]),
            _take(self.acc_name, conv_acc),
            _cat(_pick(COMPANY_A, a), " ", _pick(COMPANY_B, b)),
        )
        domain = pc.if_else(
            pa.array(L["is_conv"]),
            _take(self.acc_domain, conv_acc),
            pc.utf8_lower(_cat(_pick(COMPANY_A, a), _pick(COMPANY_B, b), ".example.net")),
        )
        L["email"] = pc.utf8_lower(
            _cat(
                _pick(FIRST_NAMES, fn),
                ".",
                _pick(LAST_NAMES, ln),
                ".l",
                _num_str(np.arange(nl)),
                "@",
                domain,
            )
        )
        L["company"] = company
        self.lead_ids = _ids("Lead", 1, nl)

    # ------------------------------------------------------------------ contacts
    def contacts(self) -> None:
        rng, o, L = self.rng, self.opp, self.lead
        conv = np.flatnonzero(L["is_conv"])
        nc = len(conv)
        na = self.n["accounts"]
        n_extra = max(self.n["contacts"] - nc, na)
        acc_extra = np.concatenate([np.arange(na), rng.integers(0, na, n_extra - na)])
        # account creation: before its first opportunity, else somewhere in the history
        first_opp = np.full(na, np.inf)
        np.minimum.at(first_opp, o["acc"], o["created"])
        lead_first = np.full(na, np.inf)
        np.minimum.at(lead_first, o["acc"][L["opp"][conv]], L["created"][conv])
        first_use = np.minimum(first_opp, lead_first)
        has = np.isfinite(first_use)
        acc_created = np.where(
            has,
            first_use - rng.uniform(1, 90, na),
            rng.uniform(self.gen_day - 365, self.t_end - 1, na),
        )
        self.acc_created = acc_created
        lim = np.where(has, first_use, self.t_end)
        x_created = acc_created[acc_extra] + rng.random(n_extra) * (
            lim[acc_extra] - acc_created[acc_extra]
        )
        first_extra = np.arange(n_extra) < na
        x_created = np.where(first_extra, acc_created[acc_extra] + 0.01, x_created)
        ct = dict(
            acc=np.concatenate([o["acc"][L["opp"][conv]], acc_extra]),
            created=np.concatenate([L["conv_t"][conv], x_created]),
            lead=np.concatenate([conv, np.full(n_extra, -1)]),
            first=np.concatenate([L["first"][conv], rng.integers(0, len(FIRST_NAMES), n_extra)]),
            last=np.concatenate([L["last"][conv], rng.integers(0, len(LAST_NAMES), n_extra)]),
            source=np.concatenate([L["source"][conv], _choice(rng, n_extra, T.LEAD_SOURCE_MIX)]),
        )
        ct["owner"] = np.concatenate([L["owner"][conv], self.acc_owner[acc_extra]])
        order = np.argsort(ct["created"], kind="stable")
        ct = {k: v[order] for k, v in ct.items()}
        n = nc + n_extra
        inv = np.empty(n, dtype=np.int64)
        inv[order] = np.arange(n)
        self.ct = ct
        self.contact_ids = _ids("Contact", 1, n)
        L["contact"] = np.full(len(L["created"]), -1, dtype=np.int64)
        L["contact"][conv] = inv[np.arange(nc)]
        # the account's first extra contact (created right after the account)
        self.acc_first_contact = inv[nc + np.arange(na)]
        email_extra = pc.utf8_lower(
            _cat(
                _pick(FIRST_NAMES, ct["first"]),
                ".",
                _pick(LAST_NAMES, ct["last"]),
                ".c",
                _num_str(np.arange(n)),
                "@",
                _take(self.acc_domain, ct["acc"]),
            )
        )
        lead_email = _take(L["email"], ct["lead"], ct["lead"] >= 0)
        ct["email"] = pc.coalesce(lead_email, email_extra)
        ct["modified"] = ct["created"] + rng.exponential(60, n) * (rng.random(n) < 0.3)
        ct["modified"] = np.minimum(ct["modified"], self.t_end - 1e-4)

    # ------------------------------------------------------------------ campaigns
    def campaigns(self) -> None:
        rng, L = self.rng, self.lead
        qs = self.qstarts[(self.qstarts >= self.gen_day - 92) & (self.qstarts <= self.end_day)]
        chans = list(CAMPAIGN_CHANNELS)
        nq, nch = len(qs), len(chans)
        q_idx = np.repeat(np.arange(nq), nch)
        ch_idx = np.tile(np.arange(nch), nq)
        start = qs[q_idx]
        after = T.quarter_starts(qs[-1], qs[-1] + 200)
        qend = np.append(qs[1:], after[after > qs[-1]][0])[q_idx] - 1
        ncamp = nq * nch
        labels = [np.datetime_as_string(np.datetime64(int(d), "D"), unit="M") for d in qs]
        qname = [f"{s[:4]} Q{(int(s[5:7]) - 1) // 3 + 1}" for s in labels]
        names = _cat(
            _pick(qname, q_idx), " ", _pick([CAMPAIGN_CHANNELS[c][1] for c in chans], ch_idx)
        )
        budget = np.round(
            np.array([60, 40, 25, 10, 15, 50, 20])[ch_idx]
            * 1000.0
            * (1 + 0.3 * rng.random(ncamp))
            * (self.n["opportunities"] / 2500) ** 0.8,
            -2,
        )
        status = np.where(qend < self.end_day, 2, np.where(start <= self.end_day, 1, 0))
        actual = np.where(status == 0, np.nan, np.round(budget * rng.uniform(0.8, 1.1, ncamp), 2))
        actual = np.where(
            status == 1, np.round(actual * (self.end_day - start) / (qend - start + 1), 2), actual
        )
        created = start - 20 + 0.4
        self.camp = dict(q=q_idx, ch=ch_idx, start=start, qs=qs, names=names, chans=chans)
        self.campaign_ids = _ids("Campaign", 1, ncamp)
        self.t["Campaign"] = _table(
            "Campaign",
            {
                "Id": self.campaign_ids,
                "Name": names,
                "Type": _pick([CAMPAIGN_CHANNELS[c][0] for c in chans], ch_idx),
                "Status": _pick(["Planned", "In Progress", "Completed"], status),
                "StartDate": _date(start),
                "EndDate": _date(qend),
                "BudgetedCost": budget,
                "ActualCost": pa.array(actual, mask=np.isnan(actual)),
                "Channel__c": _pick(chans, ch_idx),
                **_audit(
                    created,
                    np.where(status == 2, np.minimum(qend + 3.5, self.t_end - 0.01), created),
                ),
            },
            ncamp,
        )
        # campaign membership: 60 % of leads respond to the campaign of their quarter
        nl = len(L["created"])
        lq = np.clip(np.searchsorted(qs, np.floor(L["created"]), side="right") - 1, 0, nq - 1)
        src_ch = np.array(
            [
                chans.index(LEAD_SOURCE_CHANNEL[s]) if LEAD_SOURCE_CHANNEL[s] in chans else -1
                for s in LEAD_SOURCES
            ]
        )
        lch = src_ch[L["source"]]
        lch = np.where(lch >= 0, lch, rng.integers(0, nch, nl))
        member = rng.random(nl) < 0.6
        m_lead = np.flatnonzero(member)
        m_camp = lq[m_lead] * nch + lch[m_lead]
        L["campaign"] = np.full(nl, -1, dtype=np.int64)
        L["campaign"][m_lead] = m_camp
        responded = rng.random(len(m_lead)) < 0.8
        contact = L["contact"][m_lead]
        cm_created = np.maximum(L["created"][m_lead] - 0.01, start[m_camp] - 19)
        nm = len(m_lead)
        self.t["CampaignMember"] = _table(
            "CampaignMember",
            {
                "Id": _ids("CampaignMember", 1, nm),
                "CampaignId": _take(self.campaign_ids, m_camp),
                "LeadId": _take(self.lead_ids, m_lead),
                "ContactId": _take(self.contact_ids, contact, contact >= 0),
                "Status": _pick(["Sent", "Responded"], responded.astype(np.int64)),
                "HasResponded": responded,
                "FirstRespondedDate": _date(L["created"][m_lead], ~responded),
                **_audit(cm_created),
            },
            nm,
        )

    # ------------------------------------------------------------------ products, line items
    def products_and_items(self) -> None:
        rng, o = self.rng, self.opp
        npd = len(PRODUCTS)
        self.t["Product2"] = _table(
            "Product2",
            {
                "Id": _ids("Product2", 1, npd),
                "Name": pa.array([p[0] for p in PRODUCTS]),
                "ProductCode": pa.array([f"SKU-{i + 100}" for i in range(npd)]),
                "Family": pa.array([p[1] for p in PRODUCTS]),
                "IsActive": np.ones(npd, dtype=bool),
                **_audit(np.full(npd, self.gen_day - 500.0)),
            },
            npd,
        )
        no = len(o["created"])
        k = 1 + rng.binomial(2, 0.4, no)
        li_opp = np.repeat(np.arange(no), k)
        pos = np.arange(len(li_opp)) - np.repeat(np.cumsum(k) - k, k)
        w = rng.gamma(2.0, 1.0, len(li_opp))
        w[pos == 0] += 3.0  # the platform line carries most of the value
        tot = np.zeros(no)
        np.add.at(tot, li_opp, w)
        amount = o["amount_final"]
        total = np.round(amount[li_opp] * w / tot[li_opp], 2)
        # make the lines sum exactly to the amount: the rounding rest goes on the first line
        s = np.zeros(no)
        np.add.at(s, li_opp, total)
        first = np.cumsum(k) - k
        total[first] = np.round(total[first] + (amount - s), 2)
        platform = np.array([0, 1, 2])[o["seg"]][li_opp]
        other = rng.integers(3, npd, len(li_opp))
        product = np.where(pos == 0, platform, other)
        qty = np.where(
            pos == 0,
            np.maximum(1, rng.poisson(np.array([5, 20, 80])[o["seg"]][li_opp])),
            rng.integers(1, 10, len(li_opp)),
        ).astype(np.float64)
        n = len(li_opp)
        created = o["created"][li_opp] + 0.001 * (pos + 1)
        self.t["OpportunityLineItem"] = _table(
            "OpportunityLineItem",
            {
                "Id": _ids("OpportunityLineItem", 1, n),
                "OpportunityId": _take(self.opp_ids, li_opp),
                "Product2Id": _take(self.t["Product2"]["Id"].combine_chunks(), product),
                "Quantity": qty,
                "UnitPrice": total / qty,
                "TotalPrice": total,
                **_audit(created, np.maximum(o["modified"][li_opp], created)),
            },
            n,
        )

    @property
    def opp_ids(self) -> pa.Array:
        if not hasattr(self, "_opp_ids"):
            self._opp_ids = _ids("Opportunity", 1, len(self.opp["created"]))
        return self._opp_ids

    # ------------------------------------------------------------------ contact roles
    def contact_roles(self) -> None:
        rng, o, L = self.rng, self.opp, self.lead
        no = len(o["created"])
        lead_contact = np.where(o["lead"] >= 0, L["contact"][np.maximum(o["lead"], 0)], -1)
        primary = np.where(lead_contact >= 0, lead_contact, self.acc_first_contact[o["acc"]])
        # extra roles: other contacts of the same account created before the deal
        ct_acc = self.ct["acc"]
        by_acc = np.argsort(ct_acc, kind="stable")
        acc_start = np.searchsorted(ct_acc[by_acc], np.arange(len(self.acc_seg)))
        acc_count = np.bincount(ct_acc, minlength=len(self.acc_seg))
        k = rng.binomial(2, np.array([0.2, 0.45, 0.7])[o["seg"]])
        x_opp = np.repeat(np.arange(no), k)
        pick = by_acc[
            acc_start[o["acc"][x_opp]]
            + np.floor(rng.random(len(x_opp)) * acc_count[o["acc"][x_opp]]).astype(np.int64)
        ]
        ok = (pick != primary[x_opp]) & (self.ct["created"][pick] < o["created"][x_opp])
        x_opp, pick = x_opp[ok], pick[ok]
        _, uniq = np.unique(x_opp * (len(self.ct["acc"]) + 1) + pick, return_index=True)
        x_opp, pick = x_opp[np.sort(uniq)], pick[np.sort(uniq)]
        r_opp = np.concatenate([np.arange(no), x_opp])
        r_ct = np.concatenate([primary, pick])
        is_primary = np.arange(len(r_opp)) < no
        order = np.lexsort((~is_primary, r_opp))
        r_opp, r_ct, is_primary = r_opp[order], r_ct[order], is_primary[order]
        role = np.where(
            is_primary, np.where(o["seg"][r_opp] == 0, 0, 4), rng.integers(1, 4, len(r_opp))
        )
        n = len(r_opp)
        created = o["created"][r_opp] + np.where(is_primary, 0.0005, rng.uniform(0.01, 20, n))
        created = np.minimum(
            created,
            np.maximum(
                o["created"][r_opp] + 0.0005, np.minimum(o["modified"][r_opp], self.t_end - 1e-4)
            ),
        )
        self.opp_primary_contact = primary
        self.t["OpportunityContactRole"] = _table(
            "OpportunityContactRole",
            {
                "Id": _ids("OpportunityContactRole", 1, n),
                "OpportunityId": _take(self.opp_ids, r_opp),
                "ContactId": _take(self.contact_ids, r_ct),
                "Role": _pick(
                    [
                        "Decision Maker",
                        "Economic Buyer",
                        "Influencer",
                        "Technical Buyer",
                        "Champion",
                    ],
                    role,
                ),
                "IsPrimary": is_primary,
                **_audit(created),
            },
            n,
        )

    def activities(self) -> None:
        rng, o, L = self.rng, self.opp, self.lead
        n_act = self.n["activities"]
        te = self.t_end
        logs = self.rep_logs
        # opportunity activities: weight = visible lifetime, won deals get more attention
        life = np.minimum(np.where(o["closed"], o["close"], te), te) - o["created"]
        w = np.maximum(life, 0.5) * np.where(o["won"], 1.6, 1.0) * logs[o["owner"]]
        n_opp_act = int(n_act * 0.85)
        cw = np.cumsum(w)
        a_opp = np.searchsorted(cw / cw[-1], rng.random(n_opp_act), side="right")
        a_opp = np.clip(a_opp, 0, len(w) - 1)
        a_t = o["created"][a_opp] + rng.random(n_opp_act) * np.maximum(life[a_opp], 0.01)
        # lead activities: prospecting touches on open/working leads
        n_lead_act = n_act - n_opp_act
        lw = (
            np.where(
                L["is_conv"],
                np.nan_to_num(L["conv_t"]) - L["created"],
                np.minimum(L["modified"] + 5, te) - L["created"],
            )
            * logs[L["owner"]]
        )
        lw = np.maximum(lw, 0)
        cl = np.cumsum(lw)
        a_lead = np.clip(
            np.searchsorted(cl / cl[-1], rng.random(n_lead_act), side="right"), 0, len(lw) - 1
        )
        l_t = L["created"][a_lead] + rng.random(n_lead_act) * lw[a_lead] / np.maximum(
            logs[L["owner"][a_lead]], 1
        )
        t = np.concatenate([a_t, l_t])
        owner = np.concatenate([o["owner"][a_opp], L["owner"][a_lead]])
        what = np.concatenate([a_opp, np.full(n_lead_act, -1)])
        who_contact = np.concatenate([self.opp_primary_contact[a_opp], np.full(n_lead_act, -1)])
        who_lead = np.concatenate([np.full(n_opp_act, -1), a_lead])
        t = np.minimum(t, te - 1e-4)
        is_event = rng.random(n_act) < 0.3
        # work happens in business hours
        t = np.floor(t) + 0.3 + 0.45 * rng.random(n_act)
        t = np.minimum(t, te - 1e-3)
        order = np.argsort(t, kind="stable")
        t, owner, what, who_contact, who_lead, is_event = (
            t[order],
            owner[order],
            what[order],
            who_contact[order],
            who_lead[order],
            is_event[order],
        )
        who = pc.coalesce(
            _take(self.contact_ids, who_contact, who_contact >= 0),
            _take(self.lead_ids, who_lead, who_lead >= 0),
        )
        what_id = _take(self.opp_ids, what, what >= 0)
        owner_id = _take(self.user_ids, self.rep_user[owner])
        tk = np.flatnonzero(~is_event)
        nt = len(tk)
        sub = rng.choice(3, nt, p=[0.45, 0.4, 0.15])
        upcoming = rng.random(nt) < 0.03  # open follow-ups scheduled after the snapshot
        adate = np.where(upcoming, te + rng.integers(1, 15, nt), np.floor(t[tk]))
        call_dur = np.where(sub == 0, rng.gamma(2.0, 150.0, nt).astype(np.int64), 0)
        self.t["Task"] = _table(
            "Task",
            {
                "Id": _ids("Task", 1, nt),
                "Subject": _pick(["Call", "Email", "Follow up"], sub),
                "TaskSubtype": _pick(["Call", "Email", "Task"], sub),
                "Status": _pick(["Completed", "Not Started"], upcoming.astype(np.int64)),
                "ActivityDate": _date(adate),
                "OwnerId": owner_id.take(pa.array(tk)),
                "WhoId": who.take(pa.array(tk)),
                "WhatId": what_id.take(pa.array(tk)),
                "CallDurationInSeconds": pa.array(call_dur, mask=sub != 0),
                **_audit(t[tk]),
            },
            nt,
        )
        ev = np.flatnonzero(is_event)
        ne = len(ev)
        etype = rng.choice(3, ne, p=[0.6, 0.3, 0.1])
        dur = np.array([30, 60, 90])[rng.integers(0, 3, ne)] * np.where(etype == 2, 2, 1)
        start = np.floor(t[ev] * 48) / 48 + 1 / 48 * rng.integers(2, 20, ne)
        created = t[ev] - rng.uniform(0.5, 10, ne)
        created = np.maximum(created, np.minimum(t[ev] - 0.01, self.gen_day))
        del who_contact, who_lead, what, order
        self.t["Event"] = _table(
            "Event",
            {
                "Id": _ids("Event", 1, ne),
                "Subject": _pick(["Meeting", "Product demo", "Onsite visit"], etype),
                "Type": _pick(["Meeting", "Demo", "Onsite"], etype),
                "StartDateTime": _ts(start),
                "EndDateTime": _ts(start + dur / 1440.0),
                "DurationInMinutes": dur,
                "ActivityDate": _date(start),
                "OwnerId": owner_id.take(pa.array(ev)),
                "WhoId": who.take(pa.array(ev)),
                "WhatId": what_id.take(pa.array(ev)),
                **_audit(np.minimum(created, t[ev]), t[ev]),
            },
            ne,
        )

    # ------------------------------------------------------------------ quotas
    def quotas(self) -> None:
        qs = self.qstarts[(self.qstarts >= self.gen_day) & (self.qstarts <= self.end_day + 92)]
        daily = T.noiseless_bookings_daily(
            len(self.opp["created"]),
            self.gen_day,
            self.end_day,
            self.start_day,
            horizon=self.end_day + 200,
        )
        self.noiseless_daily = daily
        k = {s: T.SEGMENT_MIX[s] * T.win_probability(s) * T.mean_amount_usd(s) for s in SEGMENTS}
        ktot = sum(k.values())
        rows_rep, rows_q, rows_amt = [], [], []
        days = np.arange(self.gen_day - 1, self.end_day + 400)
        cap = _rep_capacity(days, self.rep_hire, self.rep_term)
        for i, q in enumerate(qs[:-1]):
            q_end = qs[i + 1]
            lo, hi = q - self.gen_day, q_end - self.gen_day
            expected = daily[max(lo, 0) : max(hi, 0)].sum()
            if i == len(qs) - 2 or expected <= 0:
                expected = (
                    daily[max(lo - 91, 0) : max(hi - 91, 0)].sum() * (1 + T.ANNUAL_GROWTH) ** 0.25
                )
            d0, d1 = q - days[0], q_end - days[0]
            rep_cap = cap[d0:d1].mean(axis=0)
            active = cap[d0:d1].max(axis=0) > 0
            for c in range(9):
                r, s = divmod(c, len(SEGMENTS))
                share = k[SEGMENTS[s]] / ktot * T.REGION_MIX[REGIONS[r]]
                reps = np.flatnonzero(active & (self.rep_cell == c))
                if not len(reps):
                    continue
                full = expected * share / max(rep_cap[reps].sum(), 1e-9)
                ramp = np.clip(
                    T.RAMP_START + (1 - T.RAMP_START) * (q - self.rep_hire[reps]) / T.RAMP_DAYS,
                    T.RAMP_START,
                    1,
                )
                rows_rep.append(reps)
                rows_q.append(np.full(len(reps), q))
                rows_amt.append(np.round(T.QUOTA_COVERAGE * full * ramp, -2))
        rep = np.concatenate(rows_rep)
        qd = np.concatenate(rows_q)
        amt = np.concatenate(rows_amt)
        order = np.lexsort((rep, qd))
        rep, qd, amt = rep[order], qd[order], amt[order]
        n = len(rep)
        created = np.minimum(qd - 15 + 0.4, self.t_end - 1)
        self.t["ForecastingQuota"] = _table(
            "ForecastingQuota",
            {
                "Id": _ids("ForecastingQuota", 1, n),
                "QuotaOwnerId": _take(self.user_ids, self.rep_user[rep]),
                "StartDate": _date(qd),
                "QuotaAmount": amt,
                "CurrencyIsoCode": pa.array(["USD"] * n),
                **_audit(created),
            },
            n,
        )

    # ------------------------------------------------------------------ assemble
    def tables(self) -> dict[str, pa.Table]:
        """Assemble the remaining tables, dropping intermediate arrays as soon as they are used
        (keeps the large scale's peak memory down)."""
        o = self.opp
        h = self.hist
        nh = len(h["opp"])
        self.t["OpportunityHistory"] = _table(
            "OpportunityHistory",
            {
                "Id": _ids("OpportunityHistory", 1, nh),
                "OpportunityId": _take(self.opp_ids, h["opp"]),
                "StageName": _pick(STAGE_NAMES, h["stage"]),
                "Amount": h["amount"],
                "Probability": STAGE_PROB[h["stage"]],
                "CloseDate": _date(h["close_day"]),
                "ForecastCategory": _pick(FORECAST_CATEGORIES, h["fc"]),
                "CreatedById": _take(self.user_ids, self.rep_user[o["owner"][h["opp"]]]),
                **_audit(h["t"]),
            },
            nh,
        )
        self.hist = None
        del h
        rng, L, ct = self.rng, self.lead, self.ct
        te = self.t_end
        na = len(self.acc_seg)
        has_won = np.zeros(na, dtype=bool)
        has_won[o["acc"][o["won"]]] = True
        acc_type = np.where(has_won, 1, 0)
        acc_type = np.where(rng.random(na) < 0.03, 2, acc_type)
        acc_type = np.where(has_won & (rng.random(na) < 0.06), 3, acc_type)
        acc_mod = np.minimum(self.acc_created + rng.exponential(200, na), te - 1e-3)
        self.t["Account"] = _table(
            "Account",
            {
                "Id": self._acc_ids(),
                "Name": self.acc_name,
                "Type": _pick(["Prospect", "Customer", "Partner", "Churned"], acc_type),
                "Industry": _pick(INDUSTRIES, self.rng.integers(0, len(INDUSTRIES), na)),
                "BillingCountry": _pick(self.country_names, self.acc_country),
                "NumberOfEmployees": self.acc_emp.astype(np.int64),
                "AnnualRevenue": np.round(self.acc_emp * rng.uniform(80_000, 250_000, na), -3),
                "OwnerId": _take(self.user_ids, self.rep_user[self.acc_owner]),
                "Segment__c": _pick(SEGMENTS, self.acc_seg),
                "Region__c": _pick(REGIONS, self.acc_region),
                "CurrencyIsoCode": _pick(CURRENCIES, self.acc_cur),
                **_audit(self.acc_created, acc_mod),
            },
            na,
        )
        nct = len(ct["created"])
        self.t["Contact"] = _table(
            "Contact",
            {
                "Id": self.contact_ids,
                "AccountId": _take(self._acc_ids(), ct["acc"]),
                "FirstName": _pick(FIRST_NAMES, ct["first"]),
                "LastName": _pick(LAST_NAMES, ct["last"]),
                "Email": ct["email"],
                "Title": _pick(
                    [
                        "CEO",
                        "CFO",
                        "VP Operations",
                        "Head of IT",
                        "Director of Sales",
                        "Engineering Manager",
                        "Analyst",
                    ],
                    rng.integers(0, 7, nct),
                ),
                "LeadSource": _pick(LEAD_SOURCES, ct["source"]),
                "OwnerId": _take(self.user_ids, self.rep_user[ct["owner"]]),
                **_audit(ct["created"], ct["modified"]),
            },
            nct,
        )
        self.ct = ct = None
        nl = len(L["created"])
        conv = L["is_conv"]
        lopp = np.maximum(L["opp"], 0)
        self.t["Lead"] = _table(
            "Lead",
            {
                "Id": self.lead_ids,
                "FirstName": _pick(FIRST_NAMES, L["first"]),
                "LastName": _pick(LAST_NAMES, L["last"]),
                "Email": L["email"],
                "Company": L["company"],
                "Status": _pick(
                    ["Open", "Working", "MQL", "SQL", "Converted", "Disqualified"], L["status"]
                ),
                "LeadSource": _pick(LEAD_SOURCES, L["source"]),
                "OwnerId": _take(self.user_ids, self.rep_user[L["owner"]]),
                "Segment__c": _pick(SEGMENTS, L["seg"]),
                "IsConverted": conv,
                "ConvertedDate": _date(np.nan_to_num(L["conv_t"]), ~conv),
                "ConvertedAccountId": _take(self._acc_ids(), o["acc"][lopp], conv),
                "ConvertedContactId": _take(self.contact_ids, L["contact"], conv),
                "ConvertedOpportunityId": _take(self.opp_ids, lopp, conv),
                "MQL_Date__c": _date(L["mql_t"], L["reached"] < 1),
                "SQL_Date__c": _date(L["sql_t"], L["reached"] < 2),
                **_audit(L["created"], L["modified"]),
            },
            nl,
        )
        no = len(o["created"])
        lost = o["closed"] & ~o["won"]
        reason = rng.choice(len(LOSS_REASONS), no, p=[0.25, 0.2, 0.15, 0.2, 0.15, 0.05])
        comp = rng.integers(0, len(COMPETITORS) - 1, no)
        comp = np.where(
            (reason != LOSS_REASONS.index("Competitor")) & (rng.random(no) < 0.35),
            len(COMPETITORS) - 1,
            comp,
        )
        comp_known = lost | (rng.random(no) < 0.3)
        camp = np.where(o["lead"] >= 0, L["campaign"][np.maximum(o["lead"], 0)], -1)
        opp_name = _cat(
            _take(self.acc_name, o["acc"]),
            " - ",
            _pick(["New Business", "Expansion", "Renewal"], o["type"]),
        )
        self.t["Opportunity"] = _table(
            "Opportunity",
            {
                "Id": self.opp_ids,
                "Name": opp_name,
                "AccountId": _take(self._acc_ids(), o["acc"]),
                "OwnerId": _take(self.user_ids, self.rep_user[o["owner"]]),
                "StageName": _pick(STAGE_NAMES, o["stage"]),
                "Amount": o["amount_final"],
                "CurrencyIsoCode": _pick(CURRENCIES, o["cur"]),
                "Probability": STAGE_PROB[o["stage"]],
                "CloseDate": _date(o["close_day"]),
                "IsClosed": o["stage"] >= WON,
                "IsWon": o["stage"] == WON,
                "ForecastCategoryName": _pick(FORECAST_CATEGORIES, o["fc"]),
                "Type": _pick(["New Business", "Expansion", "Renewal"], o["type"]),
                "LeadSource": _pick(LEAD_SOURCES, o["source"]),
                "CampaignId": _take(self.campaign_ids, camp, camp >= 0),
                "Competitor__c": _pick(COMPETITORS, comp, ~comp_known),
                "Loss_Reason__c": _pick(LOSS_REASONS, reason, ~lost),
                **_audit(o["created"], o["modified"]),
            },
            no,
        )
        return {name: self.t[name] for name in OBJECTS}

    def _acc_ids(self) -> pa.Array:
        if not hasattr(self, "_acc_id_arr"):
            # Account ids in creation order
            order = np.argsort(self.acc_created, kind="stable")
            rank = np.empty(len(order), dtype=np.int64)
            rank[order] = np.arange(len(order))
            self._acc_id_arr = _ids("Account", 1, len(order)).take(pa.array(rank))
        return self._acc_id_arr

    def truth(self, scale_name, seed, end, years, defect_rate, defects, tables) -> dict:
        o = self.opp
        closed_conv = o["closed"] & (o["lead"] >= 0)
        won_share = float(o["won"][closed_conv].mean()) if closed_conv.any() else 0.2
        effects = T.channel_effects(won_share)
        daily = self.noiseless_daily
        days = np.arange(self.gen_day, self.gen_day + len(daily))
        monthly = T.monthly(daily, days, self.start_day, self.end_day)
        return {
            "seed": seed,
            "scale": scale_name,
            "counts_requested": self.n,
            "end": end.isoformat(),
            "as_of": f"{end.isoformat()}T00:00:00Z",
            "years": years,
            "start": T.date_of(self.start_day).isoformat(),
            "history_start": T.date_of(self.gen_day).isoformat(),
            "defect_rate": defect_rate,
            "counts": {k: v.num_rows for k, v in tables.items()},
            "segment_mix": T.SEGMENT_MIX,
            "region_mix": T.REGION_MIX,
            "stage_conversion": {s: v["advance_probability"] for s, v in T.funnel_truth().items()},
            "funnel": T.funnel_truth(),
            "cycle_days": {s: v["won_cycle_days_natural"] for s, v in T.funnel_truth().items()},
            "lead_funnel": {
                "p_mql": T.LEAD_P_MQL,
                "p_sql_given_mql": T.LEAD_P_SQL,
                "p_convert_given_sql": T.LEAD_P_CONVERT,
                "days_to_mql_mean": T.LEAD_DAYS_TO_MQL,
                "days_to_sql_mean": T.LEAD_DAYS_TO_SQL,
                "days_to_convert_mean": T.LEAD_DAYS_TO_CONVERT,
            },
            "reps": {
                "ramp_days": T.RAMP_DAYS,
                "ramp_start": T.RAMP_START,
                "mean_tenure_years": T.REP_MEAN_TENURE_YEARS,
                "non_logging_rep_ids": _take(
                    self.user_ids, self.rep_user[~self.rep_logs]
                ).to_pylist(),
            },
            "bookings": {
                "growth_per_year": T.ANNUAL_GROWTH,
                "season_amplitude": T.SEASON_AMPLITUDE,
                "season_peak_day_of_year": T.SEASON_PEAK_DOY,
                "quarter_end_pull": {
                    "probability": T.PULL_PROB,
                    "window_days": T.PULL_WINDOW_DAYS,
                    "target_days": T.PULL_TARGET_DAYS,
                },
                "monthly_usd_noiseless": monthly,
            },
            "channel_effects": effects,
            "channel_ranking": T.channel_ranking(effects),
            "channel_ranking_win": T.channel_ranking(effects, "opportunity_to_won_odds_ratio"),
            "defects": defects,
            "defect_counts": _defect_counts(defects),
        }


# ----------------------------------------------------------------------------- defects
DEFECT_PLAN = {  # object -> [(field, kind)]; each object's rate is split evenly over its kinds
    "Opportunity": [
        ("AccountId", "missing_required"),
        ("Type", "invalid_picklist"),
        ("Amount", "negative_amount"),
        ("AccountId", "orphan_key"),
        ("OwnerId", "orphan_key"),
    ],
    "Account": [("Industry", "missing_required"), ("Industry", "invalid_picklist")],
    "Contact": [("Email", "missing_required"), ("AccountId", "orphan_key"), ("Email", "duplicate")],
    "Lead": [
        ("LeadSource", "missing_required"),
        ("LeadSource", "invalid_picklist"),
        ("Email", "duplicate"),
    ],
}
INVALID_VALUES = {
    "Type": "Upsell (legacy)",
    "LeadSource": "Trade Show 2019",
    "Industry": "Unknown Industry",
}


def _defect_counts(defects: list[dict]) -> dict[str, int]:
    return {f"{d['object']}.{d['field']}.{d['kind']}": len(d["ids"]) for d in defects}


def _inject_defects(rng, tables: dict[str, pa.Table], rate: float, t_end: float) -> list[dict]:
    out: list[dict] = []
    for obj, plan in DEFECT_PLAN.items():
        tbl = tables[obj]
        n = tbl.num_rows
        per_kind = int(round(rate * n / len(plan)))
        if per_kind == 0:
            for fld, kind in plan:
                out.append({"object": obj, "field": fld, "kind": kind, "ids": []})
            continue
        n_in_place = sum(per_kind for _, k in plan if k != "duplicate")
        rows = rng.choice(n, n_in_place, replace=False)
        cols = {name: tbl[name].combine_chunks() for name in tbl.column_names}
        extra: list[pa.Table] = []
        i = 0
        for fld, kind in plan:
            if kind == "duplicate":  # copy rows that carry no other defect
                src = rng.choice(np.setdiff1d(np.arange(n), rows), per_kind, replace=False)
                dup = tbl.take(pa.array(src))
                new_ids = _ids(obj, ORPHAN_BASE // 2 + len(extra) * 10_000_000, per_kind)
                created = dup["CreatedDate"].combine_chunks()
                cr = np.asarray(created.cast(pa.int64())) / MS_PER_DAY
                new_t = np.minimum(cr + rng.uniform(1, 120, per_kind), t_end - 1e-3)
                dup = dup.set_column(0, "Id", new_ids)
                for c in ("CreatedDate", "LastModifiedDate", "SystemModstamp"):
                    dup = dup.set_column(dup.schema.get_field_index(c), c, _ts(new_t))
                if obj == "Lead":  # a re-submitted form: a fresh open lead with the same email
                    for c, v in (
                        ("Status", pa.array(["Open"] * per_kind)),
                        ("IsConverted", pa.array(np.zeros(per_kind, dtype=bool))),
                    ):
                        dup = dup.set_column(dup.schema.get_field_index(c), c, v)
                    for c in (
                        "ConvertedDate",
                        "ConvertedAccountId",
                        "ConvertedContactId",
                        "ConvertedOpportunityId",
                        "MQL_Date__c",
                        "SQL_Date__c",
                    ):
                        idx = dup.schema.get_field_index(c)
                        dup = dup.set_column(idx, c, pa.nulls(per_kind, dup.schema.field(c).type))
                extra.append(dup)
                ids = new_ids.to_pylist()
            else:
                sel = rows[i : i + per_kind]
                i += per_kind
                col = cols[fld]
                mask = np.zeros(n, dtype=bool)
                mask[sel] = True
                if kind == "missing_required":
                    new = pa.nulls(n, col.type)
                elif kind == "invalid_picklist":
                    new = pa.array([INVALID_VALUES[fld]] * n)
                elif kind == "negative_amount":
                    new = pc.negate(pc.abs(col))
                    new = pc.if_else(pc.is_null(new), pa.scalar(-1000.0), new)
                elif kind == "orphan_key":
                    prefix = ID_PREFIX[OBJECTS[obj].get(fld).reference_to]
                    nums = ORPHAN_BASE + rng.integers(0, 10**9, n)
                    new = pc.binary_join_element_wise(
                        prefix, pc.utf8_lpad(_num_str(nums), width=15, padding="0"), ""
                    )
                else:  # pragma: no cover - the plan above is closed
                    raise ValueError(kind)
                cols[fld] = pc.if_else(pa.array(mask), new, col)
                ids = cols["Id"].take(pa.array(np.sort(sel))).to_pylist()
            out.append({"object": obj, "field": fld, "kind": kind, "ids": ids})
        t = pa.Table.from_arrays([cols[c] for c in tbl.column_names], schema=tbl.schema)
        tables[obj] = pa.concat_tables([t, *extra]) if extra else t
    return out


# ----------------------------------------------------------------------------- persistence
def write_org(org: Org, out_dir: str | Path) -> Path:
    """Write `<SObject>.parquet` for every object and `truth.json` (with `as_of`)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, tbl in org.tables.items():
        tmp = out / f".{name}.parquet.tmp"
        pq.write_table(tbl, tmp, compression="zstd")
        tmp.replace(out / f"{name}.parquet")
    truth = {**org.truth, "as_of": org.as_of.astimezone(UTC).isoformat().replace("+00:00", "Z")}
    (out / "truth.json").write_text(json.dumps(truth, indent=1, default=str))
    return out


def read_org(directory: str | Path) -> Org:
    """Read an org written by `write_org` (Parquet) or exported as `<SObject>.csv` files with API
    field names as headers. Missing objects are an error; extra columns are ignored."""
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"org directory {d} does not exist")
    tables: dict[str, pa.Table] = {}
    missing = []
    for name in OBJECTS:
        schema = arrow_schema(name)
        pqf, csvf = d / f"{name}.parquet", d / f"{name}.csv"
        if pqf.exists():
            tbl = pq.read_table(pqf)
        elif csvf.exists():
            tbl = _read_csv(csvf, schema)
        else:
            missing.append(name)
            continue
        absent = [f.name for f in schema if f.name not in tbl.column_names]
        if absent:
            raise ValueError(f"{name}: file lacks columns {absent}")
        tables[name] = tbl.select(schema.names).cast(schema)
    if missing:
        raise FileNotFoundError(f"{d} lacks files for {missing} (<SObject>.parquet or .csv)")
    truth: dict[str, Any] = {}
    if (d / "truth.json").exists():
        truth = json.loads((d / "truth.json").read_text())
    if "as_of" in truth:
        as_of = datetime.fromisoformat(str(truth["as_of"]).replace("Z", "+00:00"))
    else:  # the latest modification in the data
        latest = max(
            pc.max(t["SystemModstamp"]).as_py() or datetime.min.replace(tzinfo=UTC)
            for t in tables.values()
        )
        as_of = latest + timedelta(milliseconds=1)
    return Org(tables=tables, truth=truth, as_of=as_of.astimezone(UTC))


def _read_csv(path: Path, schema: pa.Schema) -> pa.Table:
    """Read an object CSV; timestamps may be ISO 8601 with 'Z' or an offset (Bulk API style)."""
    return pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            column_types={f.name: f.type for f in schema},
            strings_can_be_null=True,
            null_values=[""],
            quoted_strings_can_be_null=False,
            true_values=["true", "True", "TRUE", "1"],
            false_values=["false", "False", "FALSE", "0"],
        ),
    )


def load_into_duckdb(org: Org, duckdb_path: str | Path, schema: str = "salesforce") -> None:
    """Write every object as `<schema>.<snake(object)>` with snake_case columns, the way dlt
    loads them (deleted rows kept with is_deleted = true, plus `_dlt_load_id`, `_dlt_id`)."""
    import duckdb

    load_id = f"{time.time():.6f}"
    con = duckdb.connect(str(duckdb_path))
    try:
        con.execute(f'create schema if not exists "{schema}"')
        for name, tbl in org.tables.items():
            renamed = tbl.rename_columns([snake(c) for c in tbl.column_names])
            n = renamed.num_rows
            renamed = renamed.append_column("_dlt_load_id", pa.array([load_id] * n))
            renamed = renamed.append_column("_dlt_id", tbl["Id"])
            con.register("_org_tmp", renamed)
            con.execute(
                f'create or replace table "{schema}"."{snake(name)}" as select * from _org_tmp'
            )
            con.unregister("_org_tmp")
    finally:
        con.close()


# ----------------------------------------------------------------------------- advance
DELETE_RATE_PER_WEEK = {"Task": 0.003, "Event": 0.002, "Lead": 0.002, "Opportunity": 0.0005}


def _days(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Timestamp or date column -> float days since epoch (NaN for nulls)."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_date32(col.type):
        vals = pc.cast(col, pa.int32()).to_numpy(zero_copy_only=False)
        return np.asarray(vals, dtype=np.float64)
    ms = pc.cast(col, pa.int64()).to_numpy(zero_copy_only=False)
    return np.asarray(ms, dtype=np.float64) / MS_PER_DAY


def _codes(arr: pa.Array | pa.ChunkedArray, values: list[str], default: int = -1) -> np.ndarray:
    """Position of each value in `values` (vectorised), `default` where absent or null."""
    idx = pc.index_in(arr, value_set=pa.array(values, pa.string()))
    return np.asarray(pc.fill_null(idx, default).to_numpy(zero_copy_only=False), dtype=np.int64)


def _isin(arr: pa.Array | pa.ChunkedArray, values: set | list) -> np.ndarray:
    vals = pa.array(sorted(values), pa.string())
    return np.asarray(
        pc.fill_null(pc.is_in(arr, value_set=vals), False).to_numpy(zero_copy_only=False),
        dtype=bool,
    )


def _next_counter(tbl: pa.Table) -> int:
    try:
        nums = pc.cast(pc.utf8_slice_codeunits(tbl["Id"], 3), pa.int64())
        nums = nums.filter(pc.less(nums, ORPHAN_BASE // 2))
        return int(pc.max(nums).as_py() or 0) + 1
    except (pa.ArrowInvalid, TypeError):
        return tbl.num_rows + 10**9


def _update(tbl: pa.Table, rows: np.ndarray, values: dict[str, Any]) -> pa.Table:
    """Return tbl with rows[k] of each column set to values[col][k]."""
    if len(rows) == 0:
        return tbl
    pos = np.full(tbl.num_rows, -1, dtype=np.int64)
    pos[rows] = np.arange(len(rows))
    mask = pa.array(pos >= 0)
    take = pa.array(np.maximum(pos, 0))
    for name, v in values.items():
        i = tbl.schema.get_field_index(name)
        typ = tbl.schema.field(i).type
        if not isinstance(v, pa.Array | pa.ChunkedArray):
            v = (
                pa.array(v, type=typ)
                if not isinstance(v, np.ndarray) or v.dtype != np.float64 or typ in (pa.float64(),)
                else (_ts(v) if typ == TS else _date(v))
            )
        v = v.cast(typ)
        full = v.take(take)
        tbl = tbl.set_column(i, name, pc.if_else(mask, full, tbl[name].combine_chunks()))
    return tbl


def _append(tbl: pa.Table, new: pa.Table) -> pa.Table:
    return pa.concat_tables([tbl, new.cast(tbl.schema)]) if new.num_rows else tbl


def advance(org: Org, days: float, seed: int | None = None) -> Org:
    """Move the org forward by `days`: open deals progress (new OpportunityHistory rows), new
    leads/opportunities/activities appear, some records are deleted (IsDeleted, kept in the
    table). Every new, changed or deleted row gets a SystemModstamp in (old as_of, new as_of).
    Records carrying planted defects are left untouched, so truth["defects"] stays valid."""
    if days <= 0:
        raise ValueError(f"days must be positive, got {days}")
    t0 = org.as_of.timestamp() / 86400.0
    t1 = t0 + float(days)
    if seed is None:
        seed = int(org.truth.get("seed", 0)) * 1_000_003 + int(round(t0 * 24))
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    adv = _Advance(rng, dict(org.tables), t0, t1, org.truth)
    adv.currency()
    adv.progress_opportunities()
    adv.new_opportunities()
    adv.leads()
    adv.activities()
    adv.deletions()
    tables = {name: adv.t[name] for name in OBJECTS}
    truth = json.loads(json.dumps(org.truth, default=str))
    new_as_of = org.as_of + timedelta(days=float(days))
    truth["as_of"] = new_as_of.isoformat().replace("+00:00", "Z")
    truth["counts"] = {k: v.num_rows for k, v in tables.items()}
    truth.setdefault("advances", []).append(
        {
            "from": org.as_of.isoformat(),
            "to": new_as_of.isoformat(),
            "days": days,
            "seed": seed,
            "changes": adv.changes,
        }
    )
    log.info(
        "advanced org by %s days in %.1f s: %s", days, time.perf_counter() - started, adv.changes
    )
    return Org(tables=tables, truth=truth, as_of=new_as_of)


class _Advance:
    def __init__(self, rng, tables, t0, t1, truth):
        self.rng, self.t, self.t0, self.t1, self.truth = rng, tables, t0, t1, truth
        self.lo = t0 + 2 / MS_PER_DAY  # strictly after the old as_of (ms resolution)
        self.hi = t1 - 2 / MS_PER_DAY
        self.changes: dict[str, dict[str, int]] = {}
        self.defect_ids = {i for d in truth.get("defects", []) for i in d["ids"]}
        start = truth.get("start")
        self.start_day = T.day_of(date.fromisoformat(start)) if start else int(t0) - 1096

    def _count(self, obj: str, kind: str, n: int) -> None:
        self.changes.setdefault(obj, {}).setdefault(kind, 0)
        self.changes[obj][kind] += int(n)

    def _clip(self, t: np.ndarray) -> np.ndarray:
        return np.clip(t, self.lo, self.hi)

    def _rate_count(self, obj: str, lookback: float = 365.0) -> int:
        """Poisson count of new records in the window at the recent creation intensity."""
        created = _days(self.t[obj]["CreatedDate"])
        recent = float(((created >= self.t0 - lookback) & (created < self.t0)).sum())
        d_back = np.arange(int(self.t0 - lookback), int(self.t0))
        d_win = np.arange(int(np.floor(self.t0)), int(np.ceil(self.t1)))
        w_back = T.creation_weight(d_back, self.start_day).sum()
        w_win = (
            T.creation_weight(d_win, self.start_day).sum()
            * (self.t1 - self.t0)
            / max(len(d_win), 1)
        )
        return int(self.rng.poisson(recent * w_win / max(w_back, 1e-9)))

    def _new_times(self, n: int) -> np.ndarray:
        d0, d1 = int(np.floor(self.t0)), int(np.ceil(self.t1))
        t = _sample_days(self.rng, n, d0, max(d1, d0 + 1), self.start_day)
        return np.sort(self._clip(t))

    def _reps(self):
        u = self.t["User"]
        active = np.asarray(u["IsActive"].combine_chunks().to_numpy(zero_copy_only=False))
        seg = _codes(u["Segment__c"], SEGMENTS)
        reg = _codes(u["Region__c"], REGIONS)
        ok = active & (seg >= 0) & (reg >= 0)
        cell = np.where(ok, reg * len(SEGMENTS) + seg, -1)
        return u["Id"].combine_chunks(), cell

    def _pick_rep(self, seg: np.ndarray, region: np.ndarray) -> np.ndarray:
        """Index into User of an active rep of each (region, segment) cell (any rep if none)."""
        _, cell = self._reps()
        any_rep = np.flatnonzero(cell >= 0)
        out = np.zeros(len(seg), dtype=np.int64)
        want = region * 3 + seg
        for c in np.unique(want):
            reps = np.flatnonzero(cell == c)
            reps = reps if len(reps) else any_rep
            sel = np.flatnonzero(want == c)
            out[sel] = reps[self.rng.integers(0, len(reps), len(sel))]
        return out

    # ------------------------------------------------------------------ currency rates
    def currency(self) -> None:
        dcr = self.t["DatedConversionRate"]
        start = _days(dcr["StartDate"])
        months = np.arange(
            np.datetime64(int(np.floor(self.t0)), "D").astype("datetime64[M]") + 1,
            np.datetime64(int(np.ceil(self.t1)), "D").astype("datetime64[M]") + 1,
        )
        mdays = months.astype("datetime64[D]").astype(np.int64)
        mdays = mdays[(mdays > self.t0) & (mdays < self.t1)]
        iso = np.array(dcr["IsoCode"].to_pylist())
        rate = dcr["ConversionRate"].to_numpy()
        for m in mdays:
            new_rows, upd_rows, upd_next = [], [], []
            for cur in CURRENCIES:
                sel = np.flatnonzero(iso == cur)
                if not len(sel):
                    continue
                last = sel[np.argmax(start[sel])]
                r = round(float(rate[last] * np.exp(self.rng.standard_normal() * RATE_VOL[cur])), 6)
                new_rows.append((cur, r))
                upd_rows.append(last)
                upd_next.append(m)
            tm = self._clip(np.full(len(new_rows), m - 0.5))
            dcr = _update(
                dcr,
                np.array(upd_rows),
                {
                    "NextStartDate": _date(np.array(upd_next, dtype=np.float64)),
                    "LastModifiedDate": _ts(tm),
                    "SystemModstamp": _ts(tm),
                },
            )
            k = len(new_rows)
            new = _table(
                "DatedConversionRate",
                {
                    "Id": _ids("DatedConversionRate", _next_counter(dcr), k),
                    "IsoCode": pa.array([c for c, _ in new_rows]),
                    "ConversionRate": np.array([r for _, r in new_rows]),
                    "StartDate": _date(np.full(k, float(m))),
                    "NextStartDate": _date(np.full(k, float(T.day_of(date(9999, 12, 31))))),
                    **_audit(tm),
                },
                k,
            )
            dcr = _append(dcr, new)
            start = _days(dcr["StartDate"])
            iso = np.array(dcr["IsoCode"].to_pylist())
            rate = dcr["ConversionRate"].to_numpy()
            self._count("DatedConversionRate", "new", k)
            self._count("DatedConversionRate", "changed", k)
        self.t["DatedConversionRate"] = dcr

    def _segments_of(self, account_ids: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        acc = self.t["Account"]
        idx = pc.index_in(account_ids, acc["Id"]).to_numpy(zero_copy_only=False)
        idx = np.where(np.isnan(idx.astype(np.float64)), -1, idx).astype(np.int64)
        seg = np.append(np.maximum(_codes(acc["Segment__c"], SEGMENTS), 0), 0)
        reg = np.append(np.maximum(_codes(acc["Region__c"], REGIONS), 0), 0)
        return seg[idx], reg[idx], idx

    # ------------------------------------------------------------------ open deals move on
    def progress_opportunities(self) -> None:
        rng = self.rng
        opp = self.t["Opportunity"]
        hist = self.t["OpportunityHistory"]
        closed = opp["IsClosed"].to_numpy()
        deleted = opp["IsDeleted"].to_numpy()
        ids = opp["Id"].combine_chunks()
        is_defect = _isin(ids, self.defect_ids)
        rows = np.flatnonzero(~closed & ~deleted & ~is_defect)
        if not len(rows):
            return
        cur = _codes(opp["StageName"], STAGE_NAMES)[rows]
        # when did each open deal enter its current stage?
        h_opp = pc.index_in(hist["OpportunityId"], ids.take(pa.array(rows)))
        h_opp = np.asarray(h_opp.to_numpy(zero_copy_only=False), dtype=np.float64)
        h_has = ~np.isnan(h_opp)
        h_pos = np.where(h_has, h_opp, 0).astype(np.int64)
        h_stage = _codes(hist["StageName"], STAGE_NAMES)
        h_t = _days(hist["CreatedDate"])
        match = h_has & (h_stage == cur[h_pos])
        entry0 = np.full(len(rows), np.inf)
        np.minimum.at(entry0, h_pos[match], h_t[match])
        entry0 = np.where(np.isfinite(entry0), entry0, _days(opp["CreatedDate"])[rows])
        seg, _, _ = self._segments_of(opp["AccountId"].combine_chunks().take(pa.array(rows)))
        entry, last, close, won = _funnel(rng, seg, cur, entry0, min_exit=self.t0)
        created = _days(opp["CreatedDate"])[rows]
        entry, close, _ = _pull_in(
            rng,
            entry,
            close,
            won,
            created,
            T.quarter_starts(int(self.t0), int(self.t1) + 1),
            not_before=self.lo,
        )
        cd0 = _days(opp["CloseDate"])[rows]
        amt0 = opp["Amount"].to_numpy(zero_copy_only=False)[rows]
        fc0 = np.maximum(_codes(opp["ForecastCategoryName"], FORECAST_CATEGORIES), 0)[rows]
        # events in the window: stage entries, closes, pushes of overdue close dates
        ev_r, ev_t, ev_stage, ev_cd = [], [], [], []
        for j in range(1, 5):
            sel = np.flatnonzero((j > cur) & (entry[:, j] > self.lo) & (entry[:, j] < self.hi))
            ev_r.append(sel)
            ev_t.append(entry[sel, j])
            ev_stage.append(np.full(len(sel), j))
            ev_cd.append(np.full(len(sel), np.nan))
        done = np.flatnonzero((close > self.lo) & (close < self.hi))
        ev_r.append(done)
        ev_t.append(close[done])
        ev_stage.append(np.where(won[done], WON, LOST))
        ev_cd.append(np.floor(close[done]))
        still_open = ~((close > self.lo) & (close < self.hi))
        overdue = np.flatnonzero(still_open & (cd0 < np.floor(self.t1)))
        push_t = self._clip(
            np.maximum(cd0[overdue] + 0.3 + 0.4 * rng.random(len(overdue)), self.lo)
        )
        ev_r.append(overdue)
        ev_t.append(push_t)
        ev_stage.append(np.full(len(overdue), -1))
        ev_cd.append(
            np.maximum(cd0[overdue], np.floor(self.t1)) + rng.integers(7, 46, len(overdue))
        )
        r = np.concatenate(ev_r)
        if not len(r):
            return
        t = np.concatenate(ev_t)
        stage = np.concatenate(ev_stage)
        cdv = np.concatenate(ev_cd)
        order = np.lexsort((t, r))
        r, t, stage, cdv = r[order], t[order], stage[order], cdv[order]
        # forward-fill the state within each deal, starting from its current state
        first = np.ones(len(r), dtype=bool)
        first[1:] = r[1:] != r[:-1]
        st = np.where(stage >= 0, stage, np.where(first, cur[r], -1))
        st = _group_ffill(st, st >= 0)
        cd = np.where(~np.isnan(cdv), cdv, np.where(first, cd0[r], np.nan))
        cd = _group_ffill(cd, ~np.isnan(cd))
        fcv = np.where(stage >= 0, STAGE_FC[np.maximum(stage, 0)], np.where(first, fc0[r], -1))
        fc = _group_ffill(fcv, fcv >= 0)
        n = len(r)
        owner = opp["OwnerId"].combine_chunks().take(pa.array(rows[r]))
        new_h = _table(
            "OpportunityHistory",
            {
                "Id": _ids("OpportunityHistory", _next_counter(hist), n),
                "OpportunityId": ids.take(pa.array(rows[r])),
                "StageName": _pick(STAGE_NAMES, st),
                "Amount": amt0[r],
                "Probability": STAGE_PROB[st],
                "CloseDate": _date(cd),
                "ForecastCategory": _pick(FORECAST_CATEGORIES, fc),
                "CreatedById": owner,
                **_audit(t),
            },
            n,
        )
        self.t["OpportunityHistory"] = _append(hist, new_h)
        self._count("OpportunityHistory", "new", n)
        last_ev = np.append(~first[1:], False) == 0
        lr = np.flatnonzero(last_ev)
        tr, st_l = rows[r[lr]], st[lr]
        lost = st_l == LOST
        reason = rng.integers(0, len(LOSS_REASONS), len(lr))
        loss = _pick(LOSS_REASONS, reason, ~lost)
        old_loss = opp["Loss_Reason__c"].combine_chunks().take(pa.array(tr))
        self.t["Opportunity"] = _update(
            opp,
            tr,
            {
                "StageName": _pick(STAGE_NAMES, st_l),
                "Probability": STAGE_PROB[st_l],
                "CloseDate": _date(cd[lr]),
                "IsClosed": st_l >= WON,
                "IsWon": st_l == WON,
                "ForecastCategoryName": _pick(FORECAST_CATEGORIES, fc[lr]),
                "Loss_Reason__c": pc.coalesce(loss, old_loss),
                "LastModifiedDate": _ts(t[lr]),
                "SystemModstamp": _ts(t[lr]),
            },
        )
        self._count("Opportunity", "changed", len(lr))
        # accounts of newly won deals become customers
        won_rows = tr[st_l == WON]
        if len(won_rows):
            acc_ids = opp["AccountId"].combine_chunks().take(pa.array(won_rows))
            _, _, aidx = self._segments_of(acc_ids)
            ok = aidx >= 0
            acc = self.t["Account"]
            acc_ok = ~_isin(acc["Id"], self.defect_ids)
            arows, first_i = np.unique(aidx[ok], return_index=True)
            keep = acc_ok[arows]
            arows = arows[keep]
            at = t[lr][st_l == WON][ok][first_i][keep]
            self.t["Account"] = _update(
                acc,
                arows,
                {
                    "Type": pa.array(["Customer"] * len(arows)),
                    "LastModifiedDate": _ts(at),
                    "SystemModstamp": _ts(at),
                },
            )
            self._count("Account", "changed", len(arows))

    # ------------------------------------------------------------------ new deals
    def new_opportunities(self) -> None:
        rng = self.rng
        n = self._rate_count("Opportunity")
        acc = self.t["Account"]
        acc_del = acc["IsDeleted"].to_numpy()
        acc_ok = np.flatnonzero(
            ~acc_del & pc.is_valid(acc["Segment__c"]).to_numpy(zero_copy_only=False)
        )
        if n == 0 or not len(acc_ok):
            return
        created = self._new_times(n)
        a_rows = acc_ok[rng.integers(0, len(acc_ok), n)]
        acc_ids = acc["Id"].combine_chunks().take(pa.array(a_rows))
        seg, reg, _ = self._segments_of(acc_ids)
        entry, last, close, won = _funnel(rng, seg, np.zeros(n, dtype=np.int64), created)
        done = close < self.hi
        cur = np.maximum(_codes(acc["CurrencyIsoCode"], CURRENCIES), 0)[a_rows]
        ct_tbl = self.t["CurrencyType"]
        rate_now = dict(
            zip(ct_tbl["IsoCode"].to_pylist(), ct_tbl["ConversionRate"].to_pylist(), strict=True)
        )
        rate = np.array([rate_now.get(c, 1.0) for c in CURRENCIES])[cur]
        usd = np.array([T.AMOUNT_MEDIAN_USD[s] for s in SEGMENTS])[seg] * np.exp(
            T.AMOUNT_SIGMA * rng.standard_normal(n)
        )
        amount = np.round(usd * rate, 2)
        planned = np.floor(np.maximum(created + SEG_MED[seg].sum(axis=1), self.t1 + 3))
        owners = self._pick_rep(seg, reg)
        uid, _ = self._reps()
        opp = self.t["Opportunity"]
        new_ids = _ids("Opportunity", _next_counter(opp), n)
        # history: creation, stage entries before t1, close
        h_r, h_t, h_st = [np.arange(n)], [created], [np.zeros(n, dtype=np.int64)]
        for j in range(1, 5):
            sel = np.flatnonzero((last >= j) & (entry[:, j] < self.hi))
            sel = sel[~(done[sel] & (entry[sel, j] >= close[sel]))]
            h_r.append(sel)
            h_t.append(entry[sel, j])
            h_st.append(np.full(len(sel), j))
        d = np.flatnonzero(done)
        h_r.append(d)
        h_t.append(close[d])
        h_st.append(np.where(won[d], WON, LOST))
        hr, ht, hs = np.concatenate(h_r), np.concatenate(h_t), np.concatenate(h_st)
        order = np.lexsort((ht, hr))
        hr, ht, hs = hr[order], ht[order], hs[order]
        hcd = np.where(hs >= WON, np.floor(close[hr]), planned[hr])
        nh = len(hr)
        hist = self.t["OpportunityHistory"]
        self.t["OpportunityHistory"] = _append(
            hist,
            _table(
                "OpportunityHistory",
                {
                    "Id": _ids("OpportunityHistory", _next_counter(hist), nh),
                    "OpportunityId": new_ids.take(pa.array(hr)),
                    "StageName": _pick(STAGE_NAMES, hs),
                    "Amount": amount[hr],
                    "Probability": STAGE_PROB[hs],
                    "CloseDate": _date(hcd),
                    "ForecastCategory": _pick(FORECAST_CATEGORIES, STAGE_FC[hs]),
                    "CreatedById": uid.take(pa.array(owners[hr])),
                    **_audit(ht),
                },
                nh,
            ),
        )
        lastrow = np.append(hr[1:] != hr[:-1], True)
        st = hs[lastrow]
        mod = ht[lastrow]
        cd = hcd[lastrow]
        otype = _choice(rng, n, [0.25, 0.5, 0.25])
        lost = st == LOST
        self.t["Opportunity"] = _append(
            opp,
            _table(
                "Opportunity",
                {
                    "Id": new_ids,
                    "Name": _cat(
                        acc["Name"].combine_chunks().take(pa.array(a_rows)),
                        " - ",
                        _pick(["New Business", "Expansion", "Renewal"], otype),
                    ),
                    "AccountId": acc_ids,
                    "OwnerId": uid.take(pa.array(owners)),
                    "StageName": _pick(STAGE_NAMES, st),
                    "Amount": amount,
                    "CurrencyIsoCode": _pick(CURRENCIES, cur),
                    "Probability": STAGE_PROB[st],
                    "CloseDate": _date(cd),
                    "IsClosed": st >= WON,
                    "IsWon": st == WON,
                    "ForecastCategoryName": _pick(FORECAST_CATEGORIES, STAGE_FC[st]),
                    "Type": _pick(["New Business", "Expansion", "Renewal"], otype),
                    "LeadSource": pa.array(["Outbound"] * n),
                    "Loss_Reason__c": _pick(
                        LOSS_REASONS, rng.integers(0, len(LOSS_REASONS), n), ~lost
                    ),
                    **_audit(created, mod),
                },
                n,
            ),
        )
        self._count("Opportunity", "new", n)
        self._count("OpportunityHistory", "new", nh)
        # one platform line per deal, and the account's first contact as primary role
        prod = self.t["Product2"]["Id"].combine_chunks()
        oli = self.t["OpportunityLineItem"]
        self.t["OpportunityLineItem"] = _append(
            oli,
            _table(
                "OpportunityLineItem",
                {
                    "Id": _ids("OpportunityLineItem", _next_counter(oli), n),
                    "OpportunityId": new_ids,
                    "Product2Id": prod.take(pa.array(np.minimum(seg, len(prod) - 1))),
                    "Quantity": np.ones(n),
                    "UnitPrice": amount,
                    "TotalPrice": amount,
                    **_audit(created + 1e-4, np.maximum(mod, created + 1e-4)),
                },
                n,
            ),
        )
        self._count("OpportunityLineItem", "new", n)
        con = self.t["Contact"]
        con_ok = ~con["IsDeleted"].to_numpy()
        con_acc = con["AccountId"].combine_chunks()
        cidx = pc.index_in(acc_ids, con_acc.filter(pa.array(con_ok))).to_numpy(zero_copy_only=False)
        cidx = np.asarray(cidx, dtype=np.float64)
        has = ~np.isnan(cidx)
        if has.any():
            con_ids = con["Id"].combine_chunks().filter(pa.array(con_ok))
            k = int(has.sum())
            ocr = self.t["OpportunityContactRole"]
            self.t["OpportunityContactRole"] = _append(
                ocr,
                _table(
                    "OpportunityContactRole",
                    {
                        "Id": _ids("OpportunityContactRole", _next_counter(ocr), k),
                        "OpportunityId": new_ids.filter(pa.array(has)),
                        "ContactId": con_ids.take(pa.array(cidx[has].astype(np.int64))),
                        "Role": pa.array(["Decision Maker"] * k),
                        "IsPrimary": np.ones(k, dtype=bool),
                        **_audit(self._clip(created[has] + 1e-3)),
                    },
                    k,
                ),
            )
            self._count("OpportunityContactRole", "new", k)

    # ------------------------------------------------------------------ leads
    def leads(self) -> None:
        rng = self.rng
        lead = self.t["Lead"]
        # open leads older than a week are being worked
        status = lead["Status"].combine_chunks()
        created_all = _days(lead["CreatedDate"])
        due = created_all + 7
        is_open = pc.equal(status, "Open").to_numpy(zero_copy_only=False)
        not_del = ~lead["IsDeleted"].to_numpy()
        ok = ~_isin(lead["Id"], self.defect_ids)
        rows = np.flatnonzero(is_open & not_del & ok & (due > self.lo) & (due < self.hi))
        lead = _update(
            lead,
            rows,
            {
                "Status": pa.array(["Working"] * len(rows)),
                "LastModifiedDate": _ts(due[rows]),
                "SystemModstamp": _ts(due[rows]),
            },
        )
        self._count("Lead", "changed", len(rows))
        self._lead_progress(lead, rows)
        lead = self.t["Lead"]
        n = self._rate_count("Lead")
        if n:
            created = self._new_times(n)
            seg = _choice(rng, n, T.SEGMENT_MIX)
            reg = _choice(rng, n, T.REGION_MIX)
            owner = self._pick_rep(seg, reg)
            uid, _ = self._reps()
            mql_t = created + rng.exponential(T.LEAD_DAYS_TO_MQL, n)
            mql = (rng.random(n) < T.LEAD_P_MQL) & (mql_t < self.hi)
            fn = rng.integers(0, len(FIRST_NAMES), n)
            ln = rng.integers(0, len(LAST_NAMES), n)
            a = rng.integers(0, len(COMPANY_A), n)
            b = rng.integers(0, len(COMPANY_B), n)
            start = _next_counter(lead)
            email = pc.utf8_lower(
                _cat(
                    _pick(FIRST_NAMES, fn),
                    ".",
                    _pick(LAST_NAMES, ln),
                    ".l",
                    _num_str(start + np.arange(n)),
                    "@",
                    _pick(COMPANY_A, a),
                    _pick(COMPANY_B, b),
                    ".example.net",
                )
            )
            lead = _append(
                lead,
                _table(
                    "Lead",
                    {
                        "Id": _ids("Lead", start, n),
                        "FirstName": _pick(FIRST_NAMES, fn),
                        "LastName": _pick(LAST_NAMES, ln),
                        "Email": email,
                        "Company": _cat(_pick(COMPANY_A, a), " ", _pick(COMPANY_B, b)),
                        "Status": _pick(["Open", "MQL"], mql.astype(np.int64)),
                        "LeadSource": _pick(
                            list(T.LEAD_SOURCE_MIX), _choice(rng, n, T.LEAD_SOURCE_MIX)
                        ),
                        "OwnerId": uid.take(pa.array(owner)),
                        "Segment__c": _pick(SEGMENTS, seg),
                        "IsConverted": np.zeros(n, dtype=bool),
                        "MQL_Date__c": _date(mql_t, ~mql),
                        **_audit(created, np.where(mql, mql_t, created)),
                    },
                    n,
                ),
            )
            self._count("Lead", "new", n)
        self.t["Lead"] = lead

    def _lead_progress(self, lead: pa.Table, touched: np.ndarray) -> None:
        """Recent leads reach MQL / SQL in the window with the planted funnel probabilities and
        delays (conditional on not having done so by the old as_of)."""
        rng = self.rng
        n = lead.num_rows
        code = _codes(lead["Status"], ["Open", "Working", "MQL", "SQL"])
        eligible = ~lead["IsDeleted"].to_numpy() & ~_isin(lead["Id"], self.defect_ids)
        eligible[touched] = False
        created = _days(lead["CreatedDate"])
        mql_day = _days(lead["MQL_Date__c"]) + 0.5

        def hazard(p: float, mean: float, since: np.ndarray) -> np.ndarray:
            f0 = 1 - np.exp(-np.maximum(self.t0 - since, 0) / mean)
            f1 = 1 - np.exp(-np.maximum(self.t1 - since, 0) / mean)
            return p * (f1 - f0) / np.maximum(1 - p * f0, 1e-9)

        with np.errstate(invalid="ignore"):
            to_mql = eligible & (code >= 0) & (code <= 1) & (created > self.t0 - 60)
            to_mql &= rng.random(n) < hazard(T.LEAD_P_MQL, T.LEAD_DAYS_TO_MQL, created)
            to_sql = eligible & (code == 2) & (mql_day > self.t0 - 90)
            to_sql &= rng.random(n) < hazard(T.LEAD_P_SQL, T.LEAD_DAYS_TO_SQL, mql_day)
        t = self.lo + rng.random(n) * (self.hi - self.lo)
        t = np.maximum(t, np.minimum(_days(lead["SystemModstamp"]) + 1e-6, self.hi))
        m_rows, s_rows = np.flatnonzero(to_mql), np.flatnonzero(to_sql)
        lead = _update(
            lead,
            m_rows,
            {
                "Status": pa.array(["MQL"] * len(m_rows)),
                "MQL_Date__c": _date(t[m_rows]),
                "LastModifiedDate": _ts(t[m_rows]),
                "SystemModstamp": _ts(t[m_rows]),
            },
        )
        lead = _update(
            lead,
            s_rows,
            {
                "Status": pa.array(["SQL"] * len(s_rows)),
                "SQL_Date__c": _date(t[s_rows]),
                "LastModifiedDate": _ts(t[s_rows]),
                "SystemModstamp": _ts(t[s_rows]),
            },
        )
        self._count("Lead", "changed", len(m_rows) + len(s_rows))
        self.t["Lead"] = lead

    # ------------------------------------------------------------------ activities
    def activities(self) -> None:
        rng = self.rng
        opp = self.t["Opportunity"]
        open_ = np.flatnonzero(
            ~opp["IsClosed"].to_numpy()
            & ~opp["IsDeleted"].to_numpy()
            & pc.is_valid(opp["OwnerId"]).to_numpy(zero_copy_only=False)
        )
        non_logging = set(self.truth.get("reps", {}).get("non_logging_rep_ids", []))
        owners = opp["OwnerId"].combine_chunks().take(pa.array(open_))
        logs = ~_isin(owners, non_logging)
        open_, owners = open_[logs], owners.filter(pa.array(logs))
        if not len(open_):
            return
        ocr = self.t["OpportunityContactRole"]
        prim = ocr.filter(pc.and_(ocr["IsPrimary"], pc.invert(ocr["IsDeleted"])))
        opp_ids = opp["Id"].combine_chunks().take(pa.array(open_))
        pidx = np.asarray(
            pc.index_in(opp_ids, prim["OpportunityId"]).to_numpy(zero_copy_only=False),
            dtype=np.float64,
        )
        for obj in ("Task", "Event"):
            tbl = self.t[obj]
            n = self._rate_count(obj, lookback=90.0)
            if not n:
                continue
            pick = rng.integers(0, len(open_), n)
            t = self._new_times(n)
            has = ~np.isnan(pidx[pick])
            who = (
                prim["ContactId"]
                .combine_chunks()
                .take(pa.array(np.where(has, pidx[pick], 0).astype(np.int64), mask=~has))
            )
            common = {
                "OwnerId": owners.take(pa.array(pick)),
                "WhoId": who,
                "WhatId": opp_ids.take(pa.array(pick)),
                "ActivityDate": _date(t),
            }
            if obj == "Task":
                sub = rng.choice(3, n, p=[0.45, 0.4, 0.15])
                cols = {
                    "Subject": _pick(["Call", "Email", "Follow up"], sub),
                    "TaskSubtype": _pick(["Call", "Email", "Task"], sub),
                    "Status": pa.array(["Completed"] * n),
                    "CallDurationInSeconds": pa.array(
                        rng.gamma(2.0, 150.0, n).astype(np.int64), mask=sub != 0
                    ),
                }
                audit = _audit(t)
            else:
                dur = np.array([30, 60, 90])[rng.integers(0, 3, n)]
                et = rng.choice(3, n, p=[0.6, 0.3, 0.1])
                cols = {
                    "Subject": _pick(["Meeting", "Product demo", "Onsite visit"], et),
                    "Type": _pick(["Meeting", "Demo", "Onsite"], et),
                    "StartDateTime": _ts(t + 1),
                    "EndDateTime": _ts(t + 1 + dur / 1440),
                    "DurationInMinutes": dur,
                }
                common["ActivityDate"] = _date(t + 1)
                audit = _audit(t)
            self.t[obj] = _append(
                tbl,
                _table(obj, {"Id": _ids(obj, _next_counter(tbl), n), **common, **cols, **audit}, n),
            )
            self._count(obj, "new", n)

    # ------------------------------------------------------------------ deletions
    def deletions(self) -> None:
        rng = self.rng
        weeks = (self.t1 - self.t0) / 7
        for obj, rate in DELETE_RATE_PER_WEEK.items():
            tbl = self.t[obj]
            alive = ~tbl["IsDeleted"].to_numpy()
            ok = alive & ~_isin(tbl["Id"], self.defect_ids)
            created = _days(tbl["CreatedDate"])
            ok &= created < self.lo
            if obj == "Lead":
                ok &= ~tbl["IsConverted"].to_numpy()
            if obj == "Opportunity":
                ok &= ~tbl["IsClosed"].to_numpy()
                ok &= pc.is_null(_lead_conv_ref(self.t["Lead"], tbl)).to_numpy(zero_copy_only=False)
            cand = np.flatnonzero(ok)
            k = int(rng.binomial(len(cand), min(rate * weeks, 1.0))) if len(cand) else 0
            if not k:
                continue
            rows = np.sort(rng.choice(cand, k, replace=False))
            when = self.lo + rng.random(k) * (self.hi - self.lo)
            when = np.maximum(when, np.minimum(_days(tbl["SystemModstamp"])[rows] + 1e-6, self.hi))
            self.t[obj] = _update(
                tbl,
                rows,
                {
                    "IsDeleted": np.ones(k, dtype=bool),
                    "SystemModstamp": _ts(when),
                    "LastModifiedDate": _ts(when),
                },
            )
            self._count(obj, "deleted", k)
            if obj == "Opportunity":  # Salesforce deletes the children with the deal
                gone = tbl["Id"].combine_chunks().take(pa.array(rows))
                for child in (
                    "OpportunityHistory",
                    "OpportunityLineItem",
                    "OpportunityContactRole",
                ):
                    ct = self.t[child]
                    pos = np.asarray(
                        pc.index_in(ct["OpportunityId"], gone).to_numpy(zero_copy_only=False),
                        dtype=np.float64,
                    )
                    crow = np.flatnonzero(~np.isnan(pos))
                    cw = np.maximum(
                        when[pos[crow].astype(np.int64)], _days(ct["SystemModstamp"])[crow] + 1e-6
                    )
                    cw = np.minimum(cw, self.hi)
                    self.t[child] = _update(
                        ct,
                        crow,
                        {
                            "IsDeleted": np.ones(len(crow), bool),
                            "SystemModstamp": _ts(cw),
                            "LastModifiedDate": _ts(cw),
                        },
                    )
                    self._count(child, "deleted", len(crow))


def _lead_conv_ref(lead: pa.Table, opp: pa.Table) -> pa.Array:
    """For each opportunity, the converting lead's Id (null if none)."""
    conv = lead["ConvertedOpportunityId"].combine_chunks()
    idx = pc.index_in(opp["Id"], conv)
    return pc.if_else(
        pc.is_null(idx), pa.nulls(opp.num_rows, pa.string()), pa.array(["x"] * opp.num_rows)
    )
