"""Data-driven attribution inside the DuckDB warehouse (no Dagster; called by the asset layer).

Reads the dbt journey table (``intermediate.int_opportunity_journeys``, one row per touch of an
opportunity) and writes:

- ``marts.attribution_channel_effects`` (table): per model and channel the fitted numbers.
  Markov: removal effects, credited won deals / bookings, and the effect measures (probability
  of visiting the channel, win rate with / without it, odds ratio); Shapley: the
  conversions-game values (credited won deals / bookings) and the conversion-rate game
  contribution.
- ``marts.attribution_data_driven`` (view): per touch and model (``markov``, ``shapley``) the
  credit (summing to 1 per opportunity), credited opportunities / won deals / pipeline /
  bookings; the same columns as the dbt mart ``marts.attribution_touchpoints`` so the two can
  be unioned. It joins the journeys with the Markov removal effects of the table above, so it
  is always consistent with them; the analysts' copy (`reports.publish`) materialises it.

Scale: the journeys are grouped into ordered channel paths inside DuckDB (`path_stats`: one
pass, one row per distinct path with its closed / won counts and bookings, a few ten thousand
rows whatever the data size); Markov and Shapley run on those weighted paths (`fit_paths`).
No per-journey frame leaves the database, and no per-touch table is written here: writing
2 rows per touch was 80-90 % of this step. Models are fitted on closed opportunities (won =
conversion with value amount_usd, lost = null); every opportunity with touches, open ones
included, gets per-touch credits.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from assets.attribution.journeys import Journeys
from assets.attribution.markov import MarkovResult, markov
from assets.attribution.models import RATE_GAME_MAX_CHANNELS
from assets.attribution.shapley import ShapleyResult, conversion_rate_shapley, shapley

log = logging.getLogger(__name__)

JOURNEYS_TABLE = "intermediate.int_opportunity_journeys"
TOUCH_TABLE = "marts.attribution_data_driven"
CHANNEL_TABLE = "marts.attribution_channel_effects"
REQUIRED_COLUMNS = (
    "opportunity_id",
    "touchpoint_id",
    "touch_position",
    "touch_count",
    "channel",
    "opportunity_status",
    "is_won",
    "amount_usd",
)


@dataclass(frozen=True)
class DataDrivenSummary:
    journeys: int
    touches: int
    closed_journeys: int
    won_journeys: int
    markov: MarkovResult
    shapley: ShapleyResult
    channel_table: pd.DataFrame
    seconds: float


def _check_source(con: duckdb.DuckDBPyConnection, table: str) -> None:
    schema, name = table.split(".")
    cols = {
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = ? and table_name = ?",
            [schema, name],
        ).fetchall()
    }
    if not cols:
        raise LookupError(
            f"{table} does not exist: build the dbt model {name} first (dbt build --select {name})"
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in cols]
    if missing:
        raise LookupError(f"{table} lacks column(s) {missing}")


def transitions(con: duckdb.DuckDBPyConnection, table: str = JOURNEYS_TABLE) -> pd.DataFrame:
    """Order-1 transition counts of closed opportunities (won -> conversion with amount).

    The previous route of the asset, kept as an independent SQL cross-check of `path_stats`
    (tests/unit/test_attribution_paths.py); the asset no longer calls it."""
    return con.execute(
        f"""
        with touches as (
            select
                opportunity_id, touch_position, touch_count, channel, is_won,
                coalesce(amount_usd, 0) as amount_usd,
                lag(channel) over (partition by opportunity_id order by touch_position) as prev
            from {table}
            where opportunity_status in ('won', 'lost')
        )
        select coalesce(prev, '(start)') as from_state, channel as to_state,
               count(*)::double as count, 0.0::double as value
        from touches group by all
        union all
        select channel, case when is_won then '(conversion)' else '(null)' end,
               count(*)::double, sum(case when is_won then amount_usd else 0 end)::double
        from touches where touch_position = touch_count group by all
        order by 1, 2
        """
    ).df()


def channel_set_counts(con: duckdb.DuckDBPyConnection, table: str = JOURNEYS_TABLE) -> pd.DataFrame:
    """Closed journeys, won deals and bookings per exact set of channels (the statistic of both
    Shapley games). Kept, like `transitions`, as a cross-check; the asset uses `path_stats`."""
    return con.execute(
        f"""
        with sets as (
            select opportunity_id, list_sort(list_distinct(list(channel))) as channel_set,
                   bool_or(is_won) as is_won, max(coalesce(amount_usd, 0)) as amount_usd
            from {table}
            where opportunity_status in ('won', 'lost')
            group by opportunity_id
        )
        select channel_set,
               count(*)::double as journeys,
               count(*) filter (where is_won)::double as conversions,
               coalesce(sum(amount_usd) filter (where is_won), 0)::double as value
        from sets group by channel_set order by channel_set
        """
    ).df()


_PATHS_SQL = """
with
codes as (
    -- the channels `path_stats` already read, sorted: code = position (no second scan)
    select unnest($channels::varchar[]) as channel,
        unnest(range(len($channels::varchar[])))::integer as code
),
journeys as (
    select
        j.opportunity_id,
        list(c.code order by j.touch_position) as path,
        bool_or(j.opportunity_status in ('won', 'lost')) as is_closed,
        bool_or(j.is_won) as is_won,
        max(coalesce(j.amount_usd, 0)) as amount_usd
    from {source} as j
    inner join codes as c on j.channel = c.channel
    group by j.opportunity_id
)
select
    path,
    count(*)::bigint as journeys,
    count(*) filter (where is_closed)::bigint as closed,
    count(*) filter (where is_closed and is_won)::bigint as won,
    coalesce(sum(amount_usd) filter (where is_closed and is_won), 0)::double as value
from journeys
group by path
"""


@dataclass(frozen=True)
class PathStats:
    """Journeys grouped into ordered channel paths (the sufficient statistic of both models).

    ``closed`` holds the closed opportunities as weighted `Journeys` (one per distinct path:
    conversions = won, nulls = lost, value = won bookings), over the channels seen in closed
    journeys only (sorted by name). The counts cover every opportunity with touches.
    """

    closed: Journeys
    paths: int
    journeys: int
    touches: int
    closed_journeys: int
    won_journeys: int


def path_stats(con: duckdb.DuckDBPyConnection, source: str = JOURNEYS_TABLE) -> PathStats:
    """Group the journeys of `source` into ordered paths inside DuckDB (one pass, no
    per-journey frame leaves the database) and return them as weighted `Journeys`."""
    seen = con.execute(
        f"select channel, count(*) from {source} group by channel order by channel nulls first"
    ).fetchall()
    if seen and seen[0][0] is None:
        raise LookupError(
            f"{source} has {seen[0][1]} touch(es) without a channel: fix the journeys"
        )
    channels = tuple(str(name) for name, _ in seen)
    table: pa.Table = con.sql(
        _PATHS_SQL.format(source=source), params={"channels": list(channels)}
    ).to_arrow_table()
    path = table.column("path").combine_chunks()
    lengths = path.value_lengths().to_numpy(zero_copy_only=False).astype(np.int64)
    codes = path.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    count = {
        c: table.column(c).to_numpy().astype(np.float64) for c in ("journeys", "closed", "won")
    }
    value = table.column("value").to_numpy().astype(np.float64)
    keep = count["closed"] > 0
    touch_keep = np.repeat(keep, lengths)
    kept_codes = codes[touch_keep]
    used = np.unique(kept_codes)  # channels seen in closed journeys (still sorted by name)
    remap = np.full(len(channels), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    kept_lengths = lengths[keep]
    closed = Journeys(
        channels=tuple(channels[i] for i in used),
        offsets=np.concatenate([[0], np.cumsum(kept_lengths)]).astype(np.int64),
        touch_channel=remap[kept_codes],
        conversions=count["won"][keep],
        value=value[keep],
        nulls=(count["closed"] - count["won"])[keep],
    )
    return PathStats(
        closed=closed,
        paths=len(lengths),
        journeys=int(count["journeys"].sum()),
        touches=int((lengths * count["journeys"]).sum()),
        closed_journeys=int(count["closed"].sum()),
        won_journeys=int(count["won"].sum()),
    )


def fit_paths(closed: Journeys) -> tuple[MarkovResult, ShapleyResult, pd.DataFrame]:
    """Markov (order 1, exact removal effects), Shapley (both games) on closed paths."""
    if closed.n_journeys == 0:
        empty = pd.DataFrame({"channel": [], "rate_contribution": []})
        mk = MarkovResult((), 0.0, 0.0, np.zeros(0), np.zeros(0), 0.0, 0.0)
        return mk, ShapleyResult((), np.zeros(0), np.zeros(0), "none"), empty
    mk = markov(closed, 1)
    sh = shapley(closed)
    rate = (
        conversion_rate_shapley(closed)
        if 0 < closed.n_channels <= RATE_GAME_MAX_CHANNELS
        else pd.DataFrame({"channel": [], "rate_contribution": []})
    )
    return mk, sh, rate


def _channel_frame(mk: MarkovResult, sh: ShapleyResult, rate: pd.DataFrame) -> pd.DataFrame:
    nan = np.full(len(mk.channels), np.nan)
    markov_rows = pd.DataFrame(
        {
            "attribution_model": "markov",
            "channel": list(mk.channels),
            "removal_effect": mk.removal_effects,
            "value_removal_effect": mk.value_removal_effects,
            "visit_probability": nan if mk.visit_probability is None else mk.visit_probability,
            "win_rate_with": nan if mk.visit_probability is None else mk.conversion_rate_with,
            "win_rate_without": (
                nan if mk.visit_probability is None else mk.conversion_rate_without
            ),
            "odds_ratio": nan if mk.visit_probability is None else mk.odds_ratio,
            "rate_contribution": np.nan,
            "credited_won_deals": mk.conversions,
            "credited_bookings_usd": mk.values,
        }
    )
    rate_by_channel = dict(zip(rate["channel"], rate["rate_contribution"], strict=True))
    shapley_rows = pd.DataFrame(
        {
            "attribution_model": "shapley",
            "channel": list(sh.channels),
            "removal_effect": np.nan,
            "value_removal_effect": np.nan,
            "visit_probability": np.nan,
            "win_rate_with": np.nan,
            "win_rate_without": np.nan,
            "odds_ratio": np.nan,
            "rate_contribution": [rate_by_channel.get(c, np.nan) for c in sh.channels],
            "credited_won_deals": sh.conversions,
            "credited_bookings_usd": sh.values,
        }
    )
    out = pd.concat([markov_rows, shapley_rows], ignore_index=True)
    for col, share in (
        ("credited_won_deals", "won_deals_share"),
        ("credited_bookings_usd", "bookings_share"),
    ):
        total = out.groupby("attribution_model")[col].transform("sum")
        out[share] = np.where(total > 0, out[col] / total.where(total > 0), 0.0)
    return out


# per opportunity and channel the Markov and Shapley credit of one touch (the view below; the
# analysts' copy, `reports.publish_credits`, re-applies the Markov credits of unchanged deals
# from the same text when only the channel effects moved)
_WEIGHTS_CTES = """per_channel as (
    select
        j.opportunity_id,
        j.channel,
        count(*) as channel_touches,
        any_value(coalesce(e.removal_effect, 0)) as removal_effect
    from {source} as j
    left join {effects} as e on j.channel = e.channel and e.attribution_model = 'markov'
    group by j.opportunity_id, j.channel
),
per_opportunity as (
    -- summed in channel order: a parallel sum() adds in any order, and the last bits of the
    -- credits would differ between two reads of the view (the publish fingerprints it)
    select
        opportunity_id,
        count(*) as distinct_channels,
        list_sum(list(removal_effect order by channel)) as removal_total
    from per_channel
    group by opportunity_id
),
weights as (
    select
        c.opportunity_id,
        c.channel,
        case
            when o.removal_total > 0 then c.removal_effect / c.channel_touches / o.removal_total
            else 1.0 / (c.channel_touches * o.distinct_channels)
        end as markov_credit,
        1.0 / (c.channel_touches * o.distinct_channels) as shapley_credit
    from per_channel as c
    inner join per_opportunity as o on c.opportunity_id = o.opportunity_id
)"""
# the output columns derived from a touch's credit: name -> expression over {credit}, {is_won},
# {amount_usd} (the view's and the publish's update use the same text)
CREDIT_COLUMNS = (
    ("credit", "{credit}::double"),
    ("attributed_opportunities", "{credit}::double"),
    ("attributed_won_deals", "(case when {is_won} then {credit} else 0 end)::double"),
    ("attributed_pipeline_usd", "({credit} * {amount_usd})::double"),
    (
        "attributed_bookings_usd",
        "(case when {is_won} then {credit} * {amount_usd} else 0 end)::double",
    ),
)
_CREDITS = ",\n    ".join(
    f"{expr.format(credit='credit', is_won='is_won', amount_usd='amount_usd')} as {name}"
    for name, expr in CREDIT_COLUMNS
)
_TOUCH_SQL = (
    "create view {target} as\nwith\n"
    + _WEIGHTS_CTES
    + """,
credits as (
    select
        j.*,
        m.attribution_model,
        case m.attribution_model
            when 'markov' then w.markov_credit else w.shapley_credit
        end as credit
    from {source} as j
    inner join weights as w on j.opportunity_id = w.opportunity_id and j.channel = w.channel
    cross join (values ('markov'), ('shapley')) as m (attribution_model)
)
select
    opportunity_id::varchar as opportunity_id,
    touchpoint_id::varchar as touchpoint_id,
    attribution_model::varchar as attribution_model,
    touch_position::integer as touch_position,
    touch_count::integer as touch_count,
    {optional}
    channel::varchar as channel,
    opportunity_status::varchar as opportunity_status,
    is_won::boolean as is_won,
    amount_usd::double as amount_usd,
    """
    + _CREDITS.replace("{", "{{").replace("}", "}}")
    + """
from credits
"""
)
_OPTIONAL = (
    ("occurred_at", "timestamp"),
    ("campaign", "varchar"),
    ("touch_type", "varchar"),
    ("opportunity_created_date", "date"),
    ("opportunity_close_date", "date"),
)


def touch_view_sql(
    target: str, source: str = JOURNEYS_TABLE, effects: str = CHANNEL_TABLE, have=None
) -> str:
    """`CREATE VIEW target` of the per-touch credits (the columns of
    `marts.attribution_data_driven`) over the journeys `source` and the channel effects
    `effects`. The asset defines its view with it; a copy elsewhere (the analysts' file) can
    define the same view over copies of the two tables: the weekly change is then the changed
    journeys' rows plus the channel table, not every touch's credit. `have`: the columns of
    `source` (the optional ones it lacks become typed NULLs; default: all present)."""
    optional = "".join(
        f"{col}::{typ} as {col},\n    "
        if have is None or col in have
        else f"null::{typ} as {col},\n    "
        for col, typ in _OPTIONAL
    )
    return _TOUCH_SQL.format(target=target, source=source, effects=effects, optional=optional)


def markov_weights_sql(source: str = JOURNEYS_TABLE, effects: str = CHANNEL_TABLE) -> str:
    """`SELECT opportunity_id, channel, markov_credit` over the journeys `source` and the channel
    effects `effects`: the Markov credit of one touch of each channel of each opportunity, the
    same expression the view `touch_view_sql` uses (bit for bit)."""
    return (
        "with\n"
        + _WEIGHTS_CTES.format(source=source, effects=effects)
        + "\nselect opportunity_id, channel, markov_credit from weights"
    )


def _drop_relation(con: duckdb.DuckDBPyConnection, relation: str) -> None:
    schema, name = relation.split(".")
    row = con.execute(
        "select table_type from information_schema.tables "
        "where table_schema = ? and table_name = ? and table_catalog = current_database()",
        [schema, name],
    ).fetchone()
    if row is not None:
        kind = "view" if row[0] == "VIEW" else "table"
        con.execute(f"drop {kind} {relation}")


def build_data_driven(
    con: duckdb.DuckDBPyConnection,
    source: str = JOURNEYS_TABLE,
    touch_table: str = TOUCH_TABLE,
    channel_table: str = CHANNEL_TABLE,
) -> DataDrivenSummary:
    """Fit Markov (order 1) and Shapley on `source`, (re)write the channel table and the
    per-touch view.

    Idempotent: both are replaced in one transaction.
    """
    t0 = time.perf_counter()
    _check_source(con, source)
    schema, name = source.split(".")
    have = {
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = ? and table_name = ?",
            [schema, name],
        ).fetchall()
    }
    stats = path_stats(con, source)
    log.info(
        "attribution: %d journeys, %d touches (%d closed, %d won) in %d distinct paths",
        stats.journeys,
        stats.touches,
        stats.closed_journeys,
        stats.won_journeys,
        stats.paths,
    )
    mk, sh, rate = fit_paths(stats.closed)
    log.info(
        "attribution: markov P(win)=%.4f over %d channels; shapley %s",
        mk.conversion_probability,
        len(mk.channels),
        sh.method,
    )
    channels = _channel_frame(mk, sh, rate)
    con.register("_attribution_channels", channels)
    try:
        con.execute("begin transaction")
        for table in (touch_table, channel_table):
            con.execute(f"create schema if not exists {table.split('.')[0]}")
        con.execute(
            f"""create or replace table {channel_table} as
                select attribution_model::varchar as attribution_model,
                       channel::varchar as channel,
                       removal_effect::double as removal_effect,
                       value_removal_effect::double as value_removal_effect,
                       visit_probability::double as visit_probability,
                       win_rate_with::double as win_rate_with,
                       win_rate_without::double as win_rate_without,
                       odds_ratio::double as odds_ratio,
                       rate_contribution::double as rate_contribution,
                       credited_won_deals::double as credited_won_deals,
                       credited_bookings_usd::double as credited_bookings_usd,
                       won_deals_share::double as won_deals_share,
                       bookings_share::double as bookings_share
                from _attribution_channels order by attribution_model, channel"""
        )
        _drop_relation(con, touch_table)  # a table from an older version, or the view
        con.execute(touch_view_sql(touch_table, source, channel_table, have))
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    finally:
        con.unregister("_attribution_channels")
    return DataDrivenSummary(
        journeys=stats.journeys,
        touches=stats.touches,
        closed_journeys=stats.closed_journeys,
        won_journeys=stats.won_journeys,
        markov=mk,
        shapley=sh,
        channel_table=channels,
        seconds=time.perf_counter() - t0,
    )
