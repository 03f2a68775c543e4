-- Rule-based multi-touch attribution: one row per touch and model with its credit (the credits
-- of one opportunity sum to 1 per model) and the pipeline / bookings it is credited with.
-- Models and degenerate cases: docs/ATTRIBUTION.md (same weights as assets/attribution/rules.py).

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook="{{ opportunity_incremental_pre_hook(
            people=true, history=false, owners=false,
            upstream=['intermediate.int_opportunity_journeys'],
        ) }}",
        post_hook="{{ opportunity_incremental_post_hook(people=true) }}",
    )
}}

{% set half_life_days = var('attribution_half_life_days', 7) %}

with

journeys as (

    select * from {{ ref('int_opportunity_journeys') }}
    where {{ changed_opportunity_filter('opportunity_id') }}

),

weighted as (

    select
        journeys.*,
        power(0.5, journeys.days_before_last_touch / {{ half_life_days }}) as decay_weight,
        case when journeys.is_first_touch then 0.3 else 0 end
        + case when journeys.is_lead_creation_touch then 0.3 else 0 end
        + case when journeys.is_opp_creation_touch then 0.3 else 0 end as w_role_share

    from journeys

),

journey_totals as (

    select
        weighted.*,
        -- summed in touch order: a float sum in row order would differ in the last bits
        -- between builds (an incremental build must equal a full one)
        sum(weighted.decay_weight) over (
            partition by weighted.opportunity_id
            order by weighted.touch_position
            rows between unbounded preceding and unbounded following
        ) as decay_total,
        sum(case when weighted.w_role_share > 0 then 1 else 0 end) over (
            partition by weighted.opportunity_id
        ) as w_role_touches

    from weighted

),

credits as (

    select
        journey_totals.*,
        case when journey_totals.touch_position = 1 then 1.0 else 0.0 end as first_touch,
        case
            when journey_totals.touch_position = journey_totals.touch_count then 1.0 else 0.0
        end as last_touch,
        1.0 / journey_totals.touch_count as linear,
        journey_totals.decay_weight / journey_totals.decay_total as time_decay,
        case
            when journey_totals.touch_count = 1 then 1.0
            when journey_totals.touch_count = 2 then 0.5
            when
                journey_totals.touch_position = 1
                or journey_totals.touch_position = journey_totals.touch_count
                then 0.4
            else 0.2 / (journey_totals.touch_count - 2)
        end as u_shaped,
        case
            -- no touch outside the three roles: the roles share 100 %
            when
                journey_totals.touch_count = journey_totals.w_role_touches
                then journey_totals.w_role_share / 0.9
            when journey_totals.w_role_share > 0 then journey_totals.w_role_share
            else 0.1 / (journey_totals.touch_count - journey_totals.w_role_touches)
        end as w_shaped

    from journey_totals

),

unpivoted as (

    {%- set models = [
        'first_touch', 'last_touch', 'linear', 'time_decay', 'u_shaped', 'w_shaped',
    ] %}
    {%- for model in models %}

    select
        opportunity_id,
        touchpoint_id,
        touch_position,
        touch_count,
        occurred_at,
        channel,
        campaign,
        touch_type,
        opportunity_created_date,
        opportunity_close_date,
        opportunity_status,
        is_won,
        amount_usd,
        '{{ model }}' as attribution_model,
        cast({{ model }} as double) as credit

    from credits
    {%- if not loop.last %}

    union all
    {%- endif %}
    {%- endfor %}

),

final as (

    select
        -- ids
        opportunity_id,
        touchpoint_id,
        attribution_model,

        -- touch
        touch_position,
        touch_count,
        occurred_at,
        channel,
        campaign,
        touch_type,

        -- opportunity
        opportunity_created_date,
        opportunity_close_date,
        opportunity_status,
        is_won,
        amount_usd,

        -- credit
        credit,
        credit as attributed_opportunities,
        case when is_won then credit else 0 end as attributed_won_deals,
        credit * amount_usd as attributed_pipeline_usd,
        case when is_won then credit * amount_usd else 0 end as attributed_bookings_usd

    from unpivoted

)

select * from final
