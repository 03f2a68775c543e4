{#- Sales velocity metrics from the additive inputs of int_velocity_inputs_aggregated, for one
    grouping (`partition_by`, e.g. 'segment' or 'owner_id'), with month-over-month change. Used by
    the sales_velocity and sales_velocity_by_owner marts so both compute metrics the same way. -#}
{% macro velocity_metrics(relation, partition_by) -%}

aggregated as (

    select
        month_start,
        {{ partition_by }},
        cast(sum(open_qualified_opps) as bigint) as open_qualified_opps,
        sum(open_qualified_usd) as open_qualified_usd,
        cast(sum(won_count) as bigint) as won_count,
        cast(sum(lost_count) as bigint) as lost_count,
        sum(won_usd) as won_usd,
        sum(lost_usd) as lost_usd,
        sum(won_cycle_days_sum) as won_cycle_days_sum

    from {{ relation }}
    group by month_start, {{ partition_by }}

),

metrics as (

    select
        month_start,
        {{ partition_by }},
        open_qualified_opps,
        open_qualified_usd,
        won_count,
        lost_count,
        won_usd,
        lost_usd,
        won_count * 1.0 / nullif(won_count + lost_count, 0) as win_rate_count,
        won_usd * 1.0 / nullif(won_usd + lost_usd, 0) as win_rate_amount,
        won_usd * 1.0 / nullif(won_count, 0) as avg_won_deal_usd,
        won_cycle_days_sum * 1.0 / nullif(won_count, 0) as avg_cycle_days

    from aggregated

),

velocity as (

    select
        metrics.*,
        open_qualified_opps
        * win_rate_count
        * avg_won_deal_usd
        / nullif(avg_cycle_days, 0) as velocity_usd_per_day

    from metrics

),

lagged as (

    select
        velocity.*,
        lag(month_start) over (
            partition by {{ partition_by }} order by month_start
        ) as prior_month_start,
        lag(velocity_usd_per_day) over (
            partition by {{ partition_by }} order by month_start
        ) as velocity_prior_period,
        lag(avg_cycle_days) over (
            partition by {{ partition_by }} order by month_start
        ) as cycle_days_prior_period

    from velocity

),

compared as (

    select
        month_start,
        {{ partition_by }},
        open_qualified_opps,
        open_qualified_usd,
        won_count,
        lost_count,
        won_usd,
        lost_usd,
        win_rate_count,
        win_rate_amount,
        avg_won_deal_usd,
        avg_cycle_days,
        velocity_usd_per_day,
        -- prior period = the previous calendar month (null when that month had no row)
        case
            when prior_month_start = {{ dbt.dateadd('month', -1, 'month_start') }}
                then velocity_prior_period
        end as velocity_prior_period,
        case
            when prior_month_start = {{ dbt.dateadd('month', -1, 'month_start') }}
                then cycle_days_prior_period
        end as cycle_days_prior_period

    from lagged

)

select
    compared.*,
    velocity_usd_per_day / nullif(velocity_prior_period, 0) - 1 as velocity_change_pct,
    avg_cycle_days / nullif(cycle_days_prior_period, 0) - 1 as cycle_days_change_pct,
    velocity_usd_per_day / nullif(velocity_prior_period, 0) - 1
    >= {{ var('velocity_improvement_target') }} as meets_velocity_target,
    avg_cycle_days / nullif(cycle_days_prior_period, 0) - 1
    <= -{{ var('velocity_improvement_target') }} as meets_cycle_target

from compared

{%- endmacro %}
