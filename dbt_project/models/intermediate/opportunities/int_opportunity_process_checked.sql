-- Sales-process checks per opportunity, from its stage history:
--   skipped stages: required stages (seed opportunity_stages.is_required) before the furthest
--     stage reached that the opportunity never entered (Closed Won requires all of them; a lost
--     deal is judged up to the last open stage it reached);
--   moved backwards: a state change to an earlier stage (closing is never backwards);
--   missing fields: Qualification or later (history or current record; not Closed Lost) without
--     a positive amount, Proposal or later without
--     products (line items), Closed Lost without a loss reason.
-- Incremental by opportunity (macros/incremental_by_opportunity.sql): its inputs are the
-- opportunity, its history and its line items and products.

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook="{{ opportunity_incremental_pre_hook(owners=false, line_items=true) }}",
        post_hook="{{ opportunity_incremental_post_hook() }}",
    )
}}

with

states as (

    select * from {{ ref('int_opportunity_states_sequenced') }}
    where {{ changed_opportunity_filter('opportunity_id') }}

),

entries as (

    select * from {{ ref('int_opportunity_stage_entries_aggregated') }}
    where {{ changed_opportunity_filter('opportunity_id') }}

),

opportunities as (

    select * from {{ ref('stg_salesforce__opportunities') }}
    where {{ changed_opportunity_filter('opportunity_id') }}

),

stages as (

    select * from {{ ref('opportunity_stages') }}

),

product_families as (

    select * from {{ ref('int_opportunity_product_families_ranked') }}
    where {{ changed_opportunity_filter('opportunity_id') }}

),

furthest as (

    select
        opportunity_id,
        max(case when stage_name != 'Closed Lost' then stage_order end) as furthest_stage_order

    from states
    group by opportunity_id

),

skipped as (

    select
        furthest.opportunity_id,
        count(*) as skipped_stages_count,
        {{ dbt.listagg('stages.stage_name', "', '", 'order by stages.stage_order') }}
            as skipped_stages

    from furthest
    inner join stages
        on
            stages.is_required
            and stages.stage_order < furthest.furthest_stage_order
    left join entries
        on
            furthest.opportunity_id = entries.opportunity_id
            and stages.stage_name = entries.stage_name
    where entries.opportunity_id is null
    group by furthest.opportunity_id

),

backwards as (

    select
        opportunity_id,
        count(*) as backward_moves

    from states
    where stage_order < previous_stage_order
    group by opportunity_id

),

amount_missing as (

    select states.opportunity_id
    from states
    where
        states.stage_order >= 2
        and not states.is_closed
        and (states.amount is null or states.amount <= 0)

    union

    -- the current record counts too (an amount edited away after the last stage change)
    select opportunities.opportunity_id
    from opportunities
    inner join stages
        on opportunities.stage_name = stages.stage_name
    where
        stages.stage_order >= 2
        and opportunities.stage_name != 'Closed Lost'
        and (opportunities.amount is null or opportunities.amount <= 0)

),

field_checks as (

    select
        opportunities.opportunity_id,
        amount_missing.opportunity_id is not null as missing_amount,
        coalesce(
            product_families.opportunity_id is null and furthest.furthest_stage_order >= 4, false
        ) as missing_products,
        coalesce(
            opportunities.stage_name = 'Closed Lost' and opportunities.loss_reason is null,
            false
        ) as missing_loss_reason

    from opportunities
    left join furthest
        on opportunities.opportunity_id = furthest.opportunity_id
    left join amount_missing
        on opportunities.opportunity_id = amount_missing.opportunity_id
    left join product_families
        on opportunities.opportunity_id = product_families.opportunity_id

)

select
    field_checks.opportunity_id,
    furthest.furthest_stage_order,
    coalesce(skipped.skipped_stages_count, 0) as skipped_stages_count,
    skipped.skipped_stages,
    coalesce(backwards.backward_moves, 0) as backward_moves,
    field_checks.missing_amount,
    field_checks.missing_products,
    field_checks.missing_loss_reason,
    concat_ws(
        ', ',
        case when field_checks.missing_amount then 'amount' end,
        case when field_checks.missing_products then 'products' end,
        case when field_checks.missing_loss_reason then 'loss_reason' end
    ) as missing_fields

from field_checks
left join furthest
    on field_checks.opportunity_id = furthest.opportunity_id
left join skipped
    on field_checks.opportunity_id = skipped.opportunity_id
left join backwards
    on field_checks.opportunity_id = backwards.opportunity_id
