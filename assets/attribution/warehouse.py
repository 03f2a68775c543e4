"""Data-driven attribution inside the DuckDB warehouse (no Dagster; called by the asset layer).

Reads the dbt journey table (``intermediate.int_opportunity_journeys``, one row per touch of an
opportunity) and writes:

- ``marts.attribution_data_driven``: per touch and model (``markov``, ``shapley``) the credit
  (summing to 1 per opportunity), credited opportunities / won deals / pipeline / bookings; the
  same columns as the dbt mart ``marts.attribution_touchpoints`` so the two can be unioned.
- ``marts.attribution_channel_effects``: per model and channel the fitted numbers. Markov:
  removal effects, credited won deals / bookings, and the effect measures (probability of
  visiting the channel, win rate with / without it, odds ratio); Shapley: the conversions-game
  values (credited won deals / bookings) and the conversion-rate game contribution.

Scale: only sufficient statistics leave DuckDB (order-1 transition counts, won deals per channel
set: a few thousand rows whatever the data size); the per-touch credits are computed in SQL with
the small table of removal effects. Models are fitted on closed opportunities (won =
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

from assets.attribution.markov import MarkovResult, chain_from_transitions, removal_effects
from assets.attribution.models import RATE_GAME_MAX_CHANNELS
from assets.attribution.shapley import (
    ShapleyResult,
    channel_sets_from_frame,
    conversion_rate_shapley,
    shapley,
)

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
    """Order-1 transition counts of closed opportunities (won -> conversion with amount)."""
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
    Shapley games)."""
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


_TOUCH_SQL = """
create or replace table {target} as
with
touches as (
    select
        j.*,
        count(*) over (partition by j.opportunity_id, j.channel) as channel_touches,
        count(distinct j.channel) over (partition by j.opportunity_id) as distinct_channels,
        coalesce(e.removal_effect, 0) as removal_effect
    from {source} as j
    left join _attribution_effects as e on j.channel = e.channel
),
weighted as (
    select
        touches.*,
        sum(removal_effect / channel_touches) over (
            partition by opportunity_id
        ) as removal_total
    from touches
),
credits as (
    select weighted.*, 'markov' as attribution_model,
        case
            when removal_total > 0 then removal_effect / channel_touches / removal_total
            else 1.0 / (channel_touches * distinct_channels)
        end as credit
    from weighted
    union all
    select weighted.*, 'shapley' as attribution_model,
        1.0 / (channel_touches * distinct_channels) as credit
    from weighted
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
    credit::double as credit,
    credit::double as attributed_opportunities,
    (case when is_won then credit else 0 end)::double as attributed_won_deals,
    (credit * amount_usd)::double as attributed_pipeline_usd,
    (case when is_won then credit * amount_usd else 0 end)::double as attributed_bookings_usd
from credits
order by opportunity_id, attribution_model, touch_position
"""
_OPTIONAL = (
    ("occurred_at", "timestamp"),
    ("campaign", "varchar"),
    ("touch_type", "varchar"),
    ("opportunity_created_date", "date"),
    ("opportunity_close_date", "date"),
)


def build_data_driven(
    con: duckdb.DuckDBPyConnection,
    source: str = JOURNEYS_TABLE,
    touch_table: str = TOUCH_TABLE,
    channel_table: str = CHANNEL_TABLE,
) -> DataDrivenSummary:
    """Fit Markov (order 1) and Shapley on `source` and (re)write both output tables.

    Idempotent: both tables are replaced in one transaction.
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
    journeys, touches, closed, won = con.execute(
        f"""select count(distinct opportunity_id), count(*),
                   count(distinct case when opportunity_status in ('won', 'lost')
                                       then opportunity_id end),
                   count(distinct case when opportunity_status = 'won' then opportunity_id end)
            from {source}"""
    ).fetchone()
    log.info(
        "attribution: %d journeys, %d touches (%d closed, %d won)", journeys, touches, closed, won
    )
    trans = transitions(con, source)
    if trans.empty:
        mk = MarkovResult((), 0.0, 0.0, np.zeros(0), np.zeros(0), 0.0, 0.0)
    else:
        mk = removal_effects(chain_from_transitions(trans, sep=None))
    sets = channel_set_counts(con, source)
    sh = (
        shapley(channel_sets_from_frame(sets))
        if len(sets)
        else ShapleyResult((), np.zeros(0), np.zeros(0), "none")
    )
    log.info(
        "attribution: markov P(win)=%.4f over %d channels; shapley %s over %d channel sets",
        mk.conversion_probability,
        len(mk.channels),
        sh.method,
        len(sets),
    )
    rate = (
        conversion_rate_shapley(sets)
        if 0 < len(sh.channels) <= RATE_GAME_MAX_CHANNELS
        else pd.DataFrame({"channel": [], "rate_contribution": []})
    )
    channels = _channel_frame(mk, sh, rate)
    effects = pd.DataFrame(
        {"channel": list(mk.channels), "removal_effect": mk.removal_effects}
    ).astype({"channel": "object", "removal_effect": "float64"})
    optional = "".join(
        f"{col}::{typ} as {col},\n    " if col in have else f"null::{typ} as {col},\n    "
        for col, typ in _OPTIONAL
    )
    con.register("_attribution_effects", effects)
    con.register("_attribution_channels", channels)
    try:
        con.execute("begin transaction")
        for table in (touch_table, channel_table):
            con.execute(f"create schema if not exists {table.split('.')[0]}")
        con.execute(_TOUCH_SQL.format(target=touch_table, source=source, optional=optional))
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
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    finally:
        con.unregister("_attribution_effects")
        con.unregister("_attribution_channels")
    return DataDrivenSummary(
        journeys=int(journeys),
        touches=int(touches),
        closed_journeys=int(closed),
        won_journeys=int(won),
        markov=mk,
        shapley=sh,
        channel_table=channels,
        seconds=time.perf_counter() - t0,
    )
