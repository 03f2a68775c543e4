-- Every week (Monday to Sunday) from the week of the first opportunity to the as-of date. A
-- week's snapshot is the state at the end of its Sunday (snapshot_at = next Monday 00:00 UTC).
-- The as-of date is var('as_of_date') when set, else the last change seen in the data.

{%- if var('as_of_date', none) -%}
{%- set as_of_expression = "cast('" ~ var('as_of_date') ~ "' as date)" -%}
{%- else -%}
{%- set as_of_expression = 'cast(max(system_modstamp) as date)' -%}
{%- endif %}

with

opportunities as (

    select * from {{ ref('stg_salesforce__opportunities') }}

),

bounds as (

    select
        cast({{ dbt.date_trunc('week', 'min(created_date)') }} as date) as first_week_start,
        {{ as_of_expression }} as as_of_date

    from opportunities

),

weeks as (

    select
        {{ date_series('first_week_start', 'as_of_date', 7, 'week_start') }},
        as_of_date

    from bounds

)

select
    week_start,
    cast({{ dbt.dateadd('day', 6, 'week_start') }} as date) as week_end,
    cast(week_start as timestamp) as week_start_at,
    cast({{ dbt.dateadd('day', 7, 'week_start') }} as timestamp) as snapshot_at,
    cast({{ dbt.dateadd('day', 6, 'week_start') }} as date) <= as_of_date as is_complete,
    as_of_date

from weeks
