-- Additive inputs of sales velocity per month, segment and owner: qualified pipeline open at the
-- start of the month, and deals closed in the month (by close date) with their amounts and cycle.

with

months as (

    select * from {{ ref('int_calendar_months_generated') }}

),

history as (

    select * from {{ ref('opportunity_history') }}

),

-- the opportunities are read twice, each through its own CTE: DuckDB materializes a CTE read
-- twice (every opportunity at large)
opportunity_owners as (

    select opportunity_id, segment, owner_id from {{ ref('opportunities') }}

),

closed_opportunities as (

    select * from {{ ref('opportunities') }}
    where is_closed

),

-- every month start within each qualified open state's interval [valid_from, valid_to), as an
-- equality key: the first one on or after valid_from, the last one before valid_to (or the last
-- month of the calendar). A range join against the calendar compared each state with every
-- later month (most of this model's time).
history_months as (

    select
        history.opportunity_id,
        history.amount_usd,
        unnest(generate_series(
            cast(
                {{ dbt.date_trunc('month', "history.valid_from - interval 1 microsecond") }}
                as timestamp
            )
            + interval 1 month,
            coalesce(
                history.valid_to - interval 1 microsecond,
                (select max(months.month_start_at) as last_month_start_at from months)
            ),
            interval 1 month
        )) as month_start_at

    from history
    where history.is_qualified and not history.is_closed

),

open_at_start as (

    select
        months.month_start,
        opportunity_owners.segment,
        opportunity_owners.owner_id,
        count(distinct history_months.opportunity_id) as open_qualified_opps,
        sum(history_months.amount_usd) as open_qualified_usd

    from history_months
    inner join months
        on history_months.month_start_at = months.month_start_at
    inner join opportunity_owners
        on history_months.opportunity_id = opportunity_owners.opportunity_id
    group by months.month_start, opportunity_owners.segment, opportunity_owners.owner_id

),

closed_in_month as (

    select
        cast({{ dbt.date_trunc('month', 'close_date') }} as date) as month_start,
        segment,
        owner_id,
        count(case when is_won then 1 end) as won_count,
        count(case when status = 'lost' then 1 end) as lost_count,
        coalesce(sum(case when is_won then amount_usd end), 0) as won_usd,
        coalesce(sum(case when status = 'lost' then amount_usd end), 0) as lost_usd,
        coalesce(sum(case when is_won then cycle_days end), 0) as won_cycle_days_sum

    from closed_opportunities
    group by {{ dbt.date_trunc('month', 'close_date') }}, segment, owner_id

),

keys as (

    select month_start, segment, owner_id from open_at_start
    union
    select month_start, segment, owner_id from closed_in_month

)

select
    keys.month_start,
    keys.segment,
    keys.owner_id,
    coalesce(open_at_start.open_qualified_opps, 0) as open_qualified_opps,
    coalesce(open_at_start.open_qualified_usd, 0) as open_qualified_usd,
    coalesce(closed_in_month.won_count, 0) as won_count,
    coalesce(closed_in_month.lost_count, 0) as lost_count,
    coalesce(closed_in_month.won_usd, 0) as won_usd,
    coalesce(closed_in_month.lost_usd, 0) as lost_usd,
    coalesce(closed_in_month.won_cycle_days_sum, 0) as won_cycle_days_sum

from keys
inner join months
    on keys.month_start = months.month_start
left join open_at_start
    on
        keys.month_start = open_at_start.month_start
        and keys.segment is not distinct from open_at_start.segment
        and keys.owner_id is not distinct from open_at_start.owner_id
left join closed_in_month
    on
        keys.month_start = closed_in_month.month_start
        and keys.segment is not distinct from closed_in_month.segment
        and keys.owner_id is not distinct from closed_in_month.owner_id
