-- Stage-to-next-stage conversion by cohort (month the stage was first entered) and segment.
-- conversion_rate = advanced / (advanced + lost): deals still open in the stage are not failures.

with

entries as (

    select * from {{ ref('int_opportunity_stage_entries_aggregated') }}

),

opportunities as (

    select * from {{ ref('opportunities') }}

),

stages as (

    select * from {{ ref('opportunity_stages') }}

),

next_stages as (

    select
        stage_name,
        stage_order,
        -- the next stage in process order (Negotiation -> Closed Won)
        lead(stage_name) over (order by stage_order, stage_name) as next_stage_name

    from stages
    where stage_name != 'Closed Lost'

),

outcomes as (

    select
        entries.opportunity_id,
        entries.stage_name,
        next_stages.next_stage_name,
        entries.stage_order,
        opportunities.segment,
        cast({{ dbt.date_trunc('month', 'entries.first_entered_at') }} as date) as cohort_month,
        entries.first_advanced_at is not null as has_advanced,
        entries.first_advanced_at is null and opportunities.status = 'lost' as is_lost,
        entries.first_advanced_at is null and opportunities.status != 'lost' as is_still_open,
        {{ dbt.datediff('entries.first_entered_at', 'entries.first_advanced_at', 'second') }}
        / 86400.0 as days_to_advance

    from entries
    inner join next_stages
        on entries.stage_name = next_stages.stage_name
    inner join opportunities
        on entries.opportunity_id = opportunities.opportunity_id
    -- open stages only: closed stages have no next stage
    where next_stages.next_stage_name is not null

)

select
    cohort_month,
    segment,
    stage_name,
    next_stage_name,
    stage_order,
    count(*) as entered,
    count(case when has_advanced then 1 end) as advanced,
    count(case when is_lost then 1 end) as lost,
    count(case when is_still_open then 1 end) as still_open,
    count(case when has_advanced then 1 end) * 1.0
    / nullif(count(case when has_advanced or is_lost then 1 end), 0) as conversion_rate,
    percentile_cont(0.5) within group (order by days_to_advance) as median_days_to_advance

from outcomes
group by cohort_month, segment, stage_name, next_stage_name, stage_order
