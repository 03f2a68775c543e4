-- Weekly pipeline waterfall per close quarter and segment, in USD cents-exact decimals:
-- start + created + pulled_in + increased - decreased - won - lost - slipped_out = end.
-- start is the previous week's end snapshot, end this week's (see pipeline_snapshots). Each open
-- opportunity is compared between the two snapshots:
--   not open at start, open at end: created (if created this week) else pulled_in (reopened);
--   open at start, not open at end: won or lost (by its state at the week's end), start amount;
--   open at both, same close quarter: increased / decreased by the amount change;
--   open at both, close date moved to another quarter: slipped_out of the old quarter (start
--   amount) and pulled_in to the new one (end amount).

with

weeks as (

    select * from {{ ref('int_calendar_weeks_generated') }}

),

-- won_by_end: whether the state covering the week's end is won. Only won states can say yes
-- (intervals of one deal do not overlap), and joining every paired row to all its deal's states
-- made ~8 candidate pairs per row at large
won_states as (

    select * from {{ ref('opportunity_history') }}
    where is_won

),

opportunities as (

    select * from {{ ref('opportunities') }}

),

week_pairs as (

    select
        week_start,
        week_end,
        week_start_at,
        snapshot_at,
        cast({{ dbt.dateadd('day', -1, 'week_start') }} as date) as previous_snapshot_date

    from weeks

),

start_states as (

    select
        week_pairs.week_start,
        snapshots.opportunity_id,
        snapshots.segment,
        snapshots.close_quarter,
        cast(coalesce(snapshots.amount_usd, 0) as decimal(18, 2)) as amount_usd

    from week_pairs
    -- the snapshots are read twice, each time straight from the table: DuckDB materializes a
    -- CTE read twice (every snapshot row at large)
    inner join {{ ref('pipeline_snapshots') }} as snapshots
        on week_pairs.previous_snapshot_date = snapshots.snapshot_date

),

end_states as (

    select
        snapshots.week_start,
        snapshots.opportunity_id,
        snapshots.segment,
        snapshots.close_quarter,
        cast(coalesce(snapshots.amount_usd, 0) as decimal(18, 2)) as amount_usd

    from {{ ref('pipeline_snapshots') }} as snapshots

),

-- every opportunity's state at the end of each week (open or not), for the ones that moved
paired as (

    select
        coalesce(start_states.week_start, end_states.week_start) as week_start,
        coalesce(start_states.opportunity_id, end_states.opportunity_id) as opportunity_id,
        coalesce(start_states.segment, end_states.segment) as segment,
        start_states.close_quarter as start_quarter,
        start_states.amount_usd as start_usd,
        end_states.close_quarter as end_quarter,
        end_states.amount_usd as end_usd

    from start_states
    full outer join end_states
        on
            start_states.week_start = end_states.week_start
            and start_states.opportunity_id = end_states.opportunity_id

),

classified as (

    select
        paired.*,
        week_pairs.week_end,
        opportunities.created_at >= week_pairs.week_start_at as created_this_week,
        won_at_end.opportunity_id is not null as won_by_end

    from paired
    inner join week_pairs
        on paired.week_start = week_pairs.week_start
    inner join opportunities
        on paired.opportunity_id = opportunities.opportunity_id
    left join won_states as won_at_end
        on
            paired.opportunity_id = won_at_end.opportunity_id
            and won_at_end.valid_from < week_pairs.snapshot_at
            and (
                won_at_end.valid_to is null
                or won_at_end.valid_to >= week_pairs.snapshot_at
            )

),

sides as (

    select 'start' as side
    union all
    select 'end' as side

),

-- one movement row per quarter an opportunity touches (its start and its end quarter), in one
-- pass over `classified` (two selects from it would materialize it)
movements as (

    select
        classified.week_start,
        classified.week_end,
        classified.segment,
        case
            when sides.side = 'start' then classified.start_quarter else classified.end_quarter
        end as close_quarter,
        case
            when sides.side = 'start' then classified.start_usd else 0
        end as start_usd,
        case
            when
                sides.side = 'end' and classified.start_quarter is null
                and classified.created_this_week
                then classified.end_usd
            else 0
        end as created_usd,
        case
            when sides.side = 'start' then 0
            when classified.start_quarter is null and not classified.created_this_week
                then classified.end_usd
            when classified.start_quarter != classified.end_quarter then classified.end_usd
            else 0
        end as pulled_in_usd,
        case
            when
                sides.side = 'start'
                and classified.end_quarter = classified.start_quarter
                and classified.end_usd > classified.start_usd
                then classified.end_usd - classified.start_usd
            else 0
        end as increased_usd,
        case
            when
                sides.side = 'start'
                and classified.end_quarter = classified.start_quarter
                and classified.end_usd < classified.start_usd
                then classified.start_usd - classified.end_usd
            else 0
        end as decreased_usd,
        case
            when
                sides.side = 'start' and classified.end_quarter is null
                and classified.won_by_end
                then classified.start_usd
            else 0
        end as won_usd,
        case
            when
                sides.side = 'start' and classified.end_quarter is null
                and not classified.won_by_end
                then classified.start_usd
            else 0
        end as lost_usd,
        case
            when
                sides.side = 'start' and classified.end_quarter != classified.start_quarter
                then classified.start_usd
            else 0
        end as slipped_out_usd,
        case
            when sides.side = 'end' then classified.end_usd
            when classified.end_quarter = classified.start_quarter then classified.end_usd
            else 0
        end as end_usd

    from classified
    cross join sides
    where
        (sides.side = 'start' and classified.start_quarter is not null)
        or (
            sides.side = 'end'
            and classified.end_quarter is not null
            and (
                classified.start_quarter is null
                or classified.start_quarter != classified.end_quarter
            )
        )

)

select
    week_start,
    week_end,
    close_quarter,
    segment,
    cast(sum(start_usd) as decimal(38, 2)) as start_usd,
    cast(sum(created_usd) as decimal(38, 2)) as created_usd,
    cast(sum(pulled_in_usd) as decimal(38, 2)) as pulled_in_usd,
    cast(sum(increased_usd) as decimal(38, 2)) as increased_usd,
    cast(sum(decreased_usd) as decimal(38, 2)) as decreased_usd,
    cast(sum(won_usd) as decimal(38, 2)) as won_usd,
    cast(sum(lost_usd) as decimal(38, 2)) as lost_usd,
    cast(sum(slipped_out_usd) as decimal(38, 2)) as slipped_out_usd,
    cast(sum(end_usd) as decimal(38, 2)) as end_usd

from movements
group by week_start, week_end, close_quarter, segment
