-- Every calendar month from the month of the first opportunity to the as-of date's month.

with

weeks as (

    select * from {{ ref('int_calendar_weeks_generated') }}

),

bounds as (

    select
        cast({{ dbt.date_trunc('month', 'min(week_start)') }} as date) as first_month_start,
        max(as_of_date) as as_of_date

    from weeks

),

months as (

    select
        {{ month_series('first_month_start', 'as_of_date', 'month_start') }},
        as_of_date

    from bounds

)

select
    month_start,
    cast({{ dbt.last_day('month_start', 'month') }} as date) as month_end,
    cast(month_start as timestamp) as month_start_at,
    cast({{ dbt.dateadd('month', 1, 'month_start') }} as timestamp) as month_end_at,
    cast({{ dbt.last_day('month_start', 'month') }} as date) <= as_of_date as is_complete,
    as_of_date

from months
