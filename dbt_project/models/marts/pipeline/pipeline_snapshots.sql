-- The as-of state of every open opportunity at the end of every week, rebuilt from history:
-- the state whose interval covers the week's snapshot instant (next Monday 00:00 UTC).

with

weeks as (

    select * from {{ ref('int_calendar_weeks_generated') }}

),

history as (

    select * from {{ ref('opportunity_history') }}

),

opportunities as (

    select * from {{ ref('opportunities') }}

)

select
    weeks.week_end as snapshot_date,
    weeks.week_start,
    weeks.is_complete,
    history.opportunity_id,
    opportunities.owner_id,
    opportunities.manager_id,
    coalesce(history.segment, 'Unknown') as segment,
    coalesce(history.region, 'Unknown') as region,
    history.stage_name,
    history.stage_order,
    history.is_qualified,
    history.forecast_category,
    history.close_date,
    cast({{ dbt.date_trunc('quarter', 'history.close_date') }} as date) as close_quarter,
    history.amount_usd,
    history.probability,
    history.amount_usd * history.probability as weighted_amount_usd,
    {{ dbt.datediff('opportunities.created_date', 'weeks.week_end', 'day') }}
        as age_days

from weeks
inner join history
    on
        history.valid_from < weeks.snapshot_at
        and (history.valid_to is null or history.valid_to >= weeks.snapshot_at)
inner join opportunities
    on history.opportunity_id = opportunities.opportunity_id
where not history.is_closed
