-- Ramp of every rep hired within the data window: days from hire to first win, and to the first
-- day the rep's bookings within a calendar month reached the team benchmark (the median monthly
-- bookings of ramped reps in the same segment). Productive within 90 days is judged only for
-- reps hired at least 90 days before the as-of date.

with

reps as (

    select * from {{ ref('int_reps_enriched') }}

),

months as (

    select * from {{ ref('int_calendar_months_generated') }}

),

won as (

    select * from {{ ref('opportunities') }}
    where is_won

),

window_bounds as (

    select
        min(month_start) as data_start,
        max(as_of_date) as as_of_date

    from months

),

rep_months as (

    select
        reps.user_id,
        reps.segment,
        months.month_start

    from reps
    inner join months
        on
            months.is_complete
            and {{ dbt.datediff('reps.hire_date', 'months.month_start', 'day') }}
            >= {{ var('ramp_benchmark_min_tenure_days') }}
            and (reps.termination_date is null or reps.termination_date >= months.month_end)

),

monthly_bookings as (

    select
        owner_id,
        cast({{ dbt.date_trunc('month', 'close_date') }} as date) as month_start,
        sum(amount_usd) as bookings_usd

    from won
    group by owner_id, {{ dbt.date_trunc('month', 'close_date') }}

),

benchmarks as (

    select
        rep_months.segment,
        percentile_cont(0.5) within group (
            order by coalesce(monthly_bookings.bookings_usd, 0)
        ) as benchmark_monthly_bookings_usd,
        count(*) as benchmark_rep_months

    from rep_months
    left join monthly_bookings
        on
            rep_months.user_id = monthly_bookings.owner_id
            and rep_months.month_start = monthly_bookings.month_start
    group by rep_months.segment

),

running as (

    select
        owner_id,
        close_date,
        sum(amount_usd) over (
            partition by owner_id, {{ dbt.date_trunc('month', 'close_date') }}
            order by close_date, opportunity_id
            rows between unbounded preceding and current row
        ) as month_to_date_usd

    from won

),

firsts as (

    select
        reps.user_id,
        min(won.close_date) as first_win_date

    from reps
    inner join won
        on reps.user_id = won.owner_id
    where won.close_date >= reps.hire_date
    group by reps.user_id

),

productive as (

    select
        reps.user_id,
        min(running.close_date) as productive_date

    from reps
    inner join benchmarks
        on reps.segment = benchmarks.segment
    inner join running
        on
            reps.user_id = running.owner_id
            and running.close_date >= reps.hire_date
            and running.month_to_date_usd >= benchmarks.benchmark_monthly_bookings_usd
    group by reps.user_id

),

hired as (

    select
        reps.user_id as owner_id,
        reps.rep_name as owner_name,
        reps.manager_id,
        reps.segment,
        reps.region,
        reps.hire_date,
        cast({{ dbt.date_trunc('quarter', 'reps.hire_date') }} as date) as hire_quarter,
        reps.termination_date,
        firsts.first_win_date,
        {{ dbt.datediff('reps.hire_date', 'firsts.first_win_date', 'day') }}
            as days_to_first_win,
        benchmarks.benchmark_monthly_bookings_usd,
        productive.productive_date,
        {{ dbt.datediff('reps.hire_date', 'productive.productive_date', 'day') }}
            as days_to_productive,
        {{ dbt.datediff('reps.hire_date', 'window_bounds.as_of_date', 'day') }}
        >= {{ var('ramp_productive_days') }} as is_evaluable

    from reps
    cross join window_bounds
    left join firsts
        on reps.user_id = firsts.user_id
    left join productive
        on reps.user_id = productive.user_id
    left join benchmarks
        on reps.segment = benchmarks.segment
    where reps.hire_date >= window_bounds.data_start

)

select
    hired.*,
    case
        when is_evaluable
            then coalesce(days_to_productive <= {{ var('ramp_productive_days') }}, false)
    end as productive_within_target

from hired
