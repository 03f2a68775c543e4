-- One row per opportunity state interval. The state as of time D is
-- valid_from <= D and (valid_to is null or valid_to > D).

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook="{{ opportunity_incremental_pre_hook(
            upstream=['intermediate.int_opportunity_states_sequenced', 'marts.opportunities'],
        ) }}",
        post_hook="{{ opportunity_incremental_post_hook() }}",
    )
}}

with

states as (

    select * from {{ ref('int_opportunity_states_sequenced') }}
    where {{ changed_opportunity_filter('opportunity_id') }}

),

opportunities as (

    select * from {{ ref('opportunities') }}
    where {{ changed_opportunity_filter('opportunity_id') }}

)

select
    states.opportunity_id,
    states.valid_from,
    states.valid_to,
    states.stage_name,
    states.amount_usd,
    states.close_date,
    states.probability,
    states.forecast_category,
    states.is_closed,
    states.is_won,
    opportunities.segment,
    opportunities.region,
    -- extras
    states.opportunity_history_id,
    states.state_number,
    states.stage_order,
    states.is_qualified,
    states.amount,
    states.currency_iso_code,
    opportunities.owner_id

from states
inner join opportunities
    on states.opportunity_id = opportunities.opportunity_id
