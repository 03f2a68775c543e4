-- One row per (not deleted, not quarantined) opportunity, with its account, owner, team,
-- corporate-currency amount and its path through the stages. Incremental by opportunity
-- (macros/incremental_by_opportunity.sql): only changed deals are recomputed.

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook="{{ opportunity_incremental_pre_hook(line_items=true) }}",
        post_hook="{{ opportunity_incremental_post_hook() }}",
    )
}}

with

opportunities as (

    select * from {{ ref('stg_salesforce__opportunities') }}
    where {{ changed_opportunity_filter('opportunity_id') }}

),

accounts as (

    select * from {{ ref('stg_salesforce__accounts') }}

),

users as (

    select * from {{ ref('stg_salesforce__users') }}

),

stages as (

    select * from {{ ref('opportunity_stages') }}

),

states as (

    select * from {{ ref('int_opportunity_states_sequenced') }}
    where {{ changed_opportunity_filter('opportunity_id') }}

),

stage_entries as (

    select * from {{ ref('int_opportunity_stage_entries_aggregated') }}
    where {{ changed_opportunity_filter('opportunity_id') }}

),

product_families as (

    select * from {{ ref('int_opportunity_product_families_ranked') }}
    where {{ changed_opportunity_filter('opportunity_id') }}

),

pushes as (

    select
        opportunity_id,
        count(
            case when close_date > previous_close_date then 1 end
        ) as pushes_count

    from states
    group by opportunity_id

),

stage_dates as (

    select
        opportunity_id,
        min(case when stage_name = 'Prospecting' then first_entered_at end)
            as prospecting_entered_at,
        min(case when stage_name = 'Qualification' then first_entered_at end)
            as qualification_entered_at,
        min(case when stage_name = 'Needs Analysis' then first_entered_at end)
            as needs_analysis_entered_at,
        min(case when stage_name = 'Proposal' then first_entered_at end)
            as proposal_entered_at,
        min(case when stage_name = 'Negotiation' then first_entered_at end)
            as negotiation_entered_at,
        min(case when stage_name = 'Closed Won' then first_entered_at end)
            as closed_won_entered_at,
        min(case when stage_name = 'Closed Lost' then first_entered_at end)
            as closed_lost_entered_at

    from stage_entries
    group by opportunity_id

),

joined as (

    select
        -- ids
        opportunities.opportunity_id,
        opportunities.name as opportunity_name,
        opportunities.account_id,
        accounts.name as account_name,
        opportunities.owner_id,
        owners.name as owner_name,
        owners.manager_id,
        opportunities.campaign_id,

        -- dimensions
        coalesce(accounts.segment, owners.segment) as segment,
        coalesce(accounts.region, owners.region) as region,
        opportunities.lead_source,
        opportunities.type,
        opportunities.stage_name,
        case
            when opportunities.is_won then 'won'
            when opportunities.is_closed then 'lost'
            else 'open'
        end as status,
        opportunities.is_closed,
        opportunities.is_won,

        -- dates
        cast(opportunities.created_date as date) as created_date,
        opportunities.close_date,

        -- amounts
        opportunities.amount,
        opportunities.currency_iso_code,
        opportunities.amount_usd,
        opportunities.probability,
        opportunities.forecast_category_name as forecast_category,

        -- outcome
        opportunities.competitor,
        opportunities.loss_reason,
        coalesce(pushes.pushes_count, 0) as pushes_count,
        case
            when opportunities.is_closed
                then {{ dbt.datediff(
                    'cast(opportunities.created_date as date)',
                    'opportunities.close_date',
                    'day'
                ) }}
        end as cycle_days,

        -- extras
        opportunities.created_date as created_at,
        stages.stage_order,
        coalesce(stages.is_qualified, false) as is_qualified,
        opportunities.amount_usd * opportunities.probability as weighted_amount_usd,
        coalesce(product_families.product_family, 'None') as product_family,
        {{ deal_size_band('opportunities.amount_usd') }} as deal_size_band,

        -- first entry per stage
        cast(stage_dates.prospecting_entered_at as date) as prospecting_entered_date,
        cast(stage_dates.qualification_entered_at as date) as qualification_entered_date,
        cast(stage_dates.needs_analysis_entered_at as date) as needs_analysis_entered_date,
        cast(stage_dates.proposal_entered_at as date) as proposal_entered_date,
        cast(stage_dates.negotiation_entered_at as date) as negotiation_entered_date,
        cast(stage_dates.closed_won_entered_at as date) as closed_won_entered_date,
        cast(stage_dates.closed_lost_entered_at as date) as closed_lost_entered_date

    from opportunities
    left join accounts
        on opportunities.account_id = accounts.account_id
    left join users as owners
        on opportunities.owner_id = owners.user_id
    left join stages
        on opportunities.stage_name = stages.stage_name
    left join pushes
        on opportunities.opportunity_id = pushes.opportunity_id
    left join stage_dates
        on opportunities.opportunity_id = stage_dates.opportunity_id
    left join product_families
        on opportunities.opportunity_id = product_families.opportunity_id

)

select
    joined.*,
    {{ dbt.datediff('created_date', 'prospecting_entered_date', 'day') }}
        as days_to_prospecting,
    {{ dbt.datediff('created_date', 'qualification_entered_date', 'day') }}
        as days_to_qualification,
    {{ dbt.datediff('created_date', 'needs_analysis_entered_date', 'day') }}
        as days_to_needs_analysis,
    {{ dbt.datediff('created_date', 'proposal_entered_date', 'day') }}
        as days_to_proposal,
    {{ dbt.datediff('created_date', 'negotiation_entered_date', 'day') }}
        as days_to_negotiation,
    {{ dbt.datediff('created_date', 'closed_won_entered_date', 'day') }}
        as days_to_closed_won,
    {{ dbt.datediff('created_date', 'closed_lost_entered_date', 'day') }}
        as days_to_closed_lost

from joined
