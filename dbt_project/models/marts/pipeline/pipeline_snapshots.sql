-- The as-of state of every open opportunity at the end of every week, rebuilt from history:
-- the state whose interval covers the week's snapshot instant (next Monday 00:00 UTC).

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook="{{ opportunity_incremental_pre_hook(
            weeks='int_calendar_weeks_generated',
            upstream=['marts.opportunity_history', 'marts.opportunities'],
        ) }}",
        post_hook="{{ opportunity_incremental_post_hook(weeks='int_calendar_weeks_generated') }}",
    )
}}

{#- Incremental runs: every week of the changed opportunities, plus every opportunity in the
    weeks that were not complete at the last build (two parts: an OR would join every week with
    every interval first). -#}
{%- set last_as_of -%}
    (
        select max(state.as_of_date) from {{ incremental_state_relation() }} as state
        where state.model = '{{ this.schema }}.{{ this.identifier }}'
    )
{%- endset %}

{%- set snapshot_columns -%}
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
{%- endset %}

with

-- every CTE is read once: DuckDB materializes a CTE read twice, and the two parts of an
-- incremental build would have materialized the whole history and opportunities marts

weeks as (

    select * from {{ ref('int_calendar_weeks_generated') }}

),

history as (

    select * from {{ ref('opportunity_history') }}
    where {{ changed_opportunity_filter('opportunity_id') }}

),

opportunities as (

    select * from {{ ref('opportunities') }}
    where {{ changed_opportunity_filter('opportunity_id') }}

)
{%- if is_incremental() %},

new_weeks as (

    select * from {{ ref('int_calendar_weeks_generated') }}
    where week_end > {{ last_as_of }}

),

open_history as (

    select * from {{ ref('opportunity_history') }}
    where
        not is_closed
        -- implied by the join (valid_to >= snapshot_at > week_end), stated so it filters first
        and (valid_to is null or valid_to > {{ last_as_of }})
        and not ({{ changed_opportunity_filter('opportunity_id') }})

),

unchanged_opportunities as (

    select * from {{ ref('opportunities') }}
    where not ({{ changed_opportunity_filter('opportunity_id') }})

)
{%- endif %}

select
    {{ snapshot_columns }}
from weeks
inner join history
    on
        history.valid_from < weeks.snapshot_at
        and (history.valid_to is null or history.valid_to >= weeks.snapshot_at)
inner join opportunities
    on history.opportunity_id = opportunities.opportunity_id
where not history.is_closed
{% if is_incremental() %}
union all

select
    {{ snapshot_columns }}
from new_weeks as weeks
inner join open_history as history
    on
        history.valid_from < weeks.snapshot_at
        and (history.valid_to is null or history.valid_to >= weeks.snapshot_at)
inner join unchanged_opportunities as opportunities
    on history.opportunity_id = opportunities.opportunity_id
{% endif %}
