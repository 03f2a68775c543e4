-- One row per opportunity state interval, rebuilt from OpportunityHistory: a history row starts a
-- state at its created_date that lasts until the next history row of the same opportunity.
-- Opportunities without any history row get one state from their current values.

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook="{{ opportunity_incremental_pre_hook(owners=false) }}",
        post_hook="{{ opportunity_incremental_post_hook() }}",
    )
}}

with

history as (

    select * from {{ ref('stg_salesforce__opportunity_history') }}
    where {{ changed_opportunity_filter('opportunity_id') }}

),

opportunities as (

    select * from {{ ref('stg_salesforce__opportunities') }}
    where {{ changed_opportunity_filter('opportunity_id') }}

),

stages as (

    select * from {{ ref('opportunity_stages') }}

),

states as (

    select
        history.opportunity_history_id,
        history.opportunity_id,
        history.created_date as valid_from,
        history.stage_name,
        history.amount,
        history.probability,
        history.forecast_category,
        -- a state without a close date keeps the opportunity's current one
        coalesce(history.close_date, opportunities.close_date) as close_date

    from history
    inner join opportunities
        on history.opportunity_id = opportunities.opportunity_id

    union all

    select
        cast(null as varchar) as opportunity_history_id,
        opportunities.opportunity_id,
        opportunities.created_date as valid_from,
        opportunities.stage_name,
        opportunities.amount,
        opportunities.probability,
        opportunities.forecast_category_name as forecast_category,
        opportunities.close_date

    from opportunities
    where not exists (
        select history.opportunity_id
        from history
        where history.opportunity_id = opportunities.opportunity_id
    )

),

sequenced as (

    select
        states.opportunity_history_id,
        states.opportunity_id,
        states.valid_from,
        lead(states.valid_from) over (
            partition by states.opportunity_id
            order by states.valid_from, states.opportunity_history_id
        ) as valid_to,
        row_number() over (
            partition by states.opportunity_id
            order by states.valid_from, states.opportunity_history_id
        ) as state_number,
        states.stage_name,
        stages.stage_order,
        lag(states.stage_name) over (
            partition by states.opportunity_id
            order by states.valid_from, states.opportunity_history_id
        ) as previous_stage_name,
        lag(stages.stage_order) over (
            partition by states.opportunity_id
            order by states.valid_from, states.opportunity_history_id
        ) as previous_stage_order,
        states.amount,
        states.close_date,
        lag(states.close_date) over (
            partition by states.opportunity_id
            order by states.valid_from, states.opportunity_history_id
        ) as previous_close_date,
        coalesce(states.probability, stages.default_probability) as probability,
        coalesce(states.forecast_category, stages.forecast_category) as forecast_category,
        coalesce(stages.is_closed, false) as is_closed,
        coalesce(stages.is_won, false) as is_won,
        coalesce(stages.is_qualified, false) as is_qualified

    from states
    left join stages
        on states.stage_name = stages.stage_name

),

converted as (

    select
        sequenced.*,
        opportunities.currency_iso_code,
        round(
            {{ to_corporate_currency(
                'sequenced.amount', 'opportunities.currency_iso_code', 'rate'
            ) }},
            2
        ) as amount_usd

    from sequenced
    inner join opportunities
        on sequenced.opportunity_id = opportunities.opportunity_id
    {{ join_conversion_rate('rate', 'opportunities.currency_iso_code', 'sequenced.close_date') }}

)

select * from converted
