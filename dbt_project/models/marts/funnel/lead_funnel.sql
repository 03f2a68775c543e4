-- Lead funnel by cohort month (lead created) and lead source: how many leads of the cohort have
-- reached each step so far. Steps are cumulative milestones: a lead counts as MQL when it has an
-- MQL date (or any later step), as SQL when it has an SQL date (or was converted), as an
-- opportunity when it was converted into one, and as won when that opportunity is won.

with

leads as (

    select * from {{ ref('stg_salesforce__leads') }}

),

opportunities as (

    select * from {{ ref('opportunities') }}

),

milestones as (

    select
        leads.lead_id,
        cast({{ dbt.date_trunc('month', 'leads.created_date') }} as date) as cohort_month,
        coalesce(leads.lead_source, 'Unknown') as lead_source,
        -- milestones are cumulative: a later step implies the earlier ones
        (
            leads.mql_date is not null
            or leads.sql_date is not null
            or opportunities.opportunity_id is not null
        ) as is_mql,
        (
            leads.sql_date is not null or opportunities.opportunity_id is not null
        ) as is_sql,
        opportunities.opportunity_id is not null as is_opportunity,
        coalesce(opportunities.status = 'won', false) as is_won,
        coalesce(opportunities.status = 'lost', false) as is_lost,
        case when opportunities.status = 'won' then opportunities.amount_usd end as won_usd,
        {{ dbt.datediff('cast(leads.created_date as date)', 'leads.mql_date', 'day') }}
            as days_to_mql,
        {{ dbt.datediff('leads.mql_date', 'leads.sql_date', 'day') }}
            as days_mql_to_sql

    from leads
    left join opportunities
        on leads.converted_opportunity_id = opportunities.opportunity_id

),

counted as (

    select
        cohort_month,
        lead_source,
        count(*) as leads,
        count(case when is_mql then 1 end) as mqls,
        count(case when is_sql then 1 end) as sqls,
        count(case when is_opportunity then 1 end) as opportunities,
        count(case when is_won then 1 end) as won,
        count(case when is_lost then 1 end) as lost,
        coalesce(sum(won_usd), 0) as won_usd,
        avg(days_to_mql) as avg_days_to_mql,
        avg(days_mql_to_sql) as avg_days_mql_to_sql

    from milestones
    group by cohort_month, lead_source

)

select
    cohort_month,
    lead_source,
    leads,
    mqls,
    sqls,
    opportunities,
    won,
    lost,
    won_usd,
    mqls * 1.0 / nullif(leads, 0) as lead_to_mql_rate,
    sqls * 1.0 / nullif(mqls, 0) as mql_to_sql_rate,
    opportunities * 1.0 / nullif(sqls, 0) as sql_to_opportunity_rate,
    -- closed basis: open opportunities are not counted as failures
    won * 1.0 / nullif(won + lost, 0) as opportunity_win_rate,
    won * 1.0 / nullif(leads, 0) as lead_to_won_rate,
    avg_days_to_mql,
    avg_days_mql_to_sql

from counted
