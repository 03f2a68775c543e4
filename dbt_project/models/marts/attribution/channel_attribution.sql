-- Attributed opportunities, pipeline, won deals and bookings per channel, campaign, month and
-- rule-based model. Pipeline counts in the month the opportunity was created, bookings in the
-- month it was won (close date). Opportunities without any touch in their window appear under
-- channel '(no touch)' with credit 1, so every model's totals reconcile to all opportunities.

with

touch_credits as (

    select * from {{ ref('attribution_touchpoints') }}

),

opportunities as (

    select * from {{ ref('opportunities') }}

),

journeys as (

    select distinct opportunity_id from {{ ref('int_opportunity_journeys') }}

),

models as (

    {%- set models = [
        'first_touch', 'last_touch', 'linear', 'time_decay', 'u_shaped', 'w_shaped',
    ] %}
    {%- for model in models %}
    select '{{ model }}' as attribution_model
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}

),

untouched as (

    select
        opportunities.opportunity_id,
        models.attribution_model,
        '(no touch)' as channel,
        '(no touch)' as campaign,
        opportunities.created_date as opportunity_created_date,
        opportunities.close_date as opportunity_close_date,
        opportunities.is_won,
        1.0 as credit,
        opportunities.amount_usd

    from opportunities
    cross join models
    left join journeys
        on opportunities.opportunity_id = journeys.opportunity_id
    where journeys.opportunity_id is null

),

credited as (

    select
        opportunity_id,
        attribution_model,
        channel,
        coalesce(campaign, '(none)') as campaign,
        opportunity_created_date,
        opportunity_close_date,
        is_won,
        credit,
        amount_usd

    from touch_credits

    union all

    select
        opportunity_id,
        attribution_model,
        channel,
        campaign,
        opportunity_created_date,
        opportunity_close_date,
        is_won,
        credit,
        amount_usd

    from untouched

),

pipeline as (

    select
        {{ dbt.date_trunc('month', 'opportunity_created_date') }} as month,
        channel,
        campaign,
        attribution_model,
        sum(credit) as attributed_opportunities,
        sum(credit * amount_usd) as attributed_pipeline_usd,
        0.0 as attributed_won_deals,
        0.0 as attributed_bookings_usd

    from credited
    group by 1, 2, 3, 4

),

bookings as (

    select
        {{ dbt.date_trunc('month', 'opportunity_close_date') }} as month,
        channel,
        campaign,
        attribution_model,
        0.0 as attributed_opportunities,
        0.0 as attributed_pipeline_usd,
        sum(credit) as attributed_won_deals,
        sum(credit * amount_usd) as attributed_bookings_usd

    from credited
    where is_won
    group by 1, 2, 3, 4

),

final as (

    select
        cast(month as date) as month,
        channel,
        campaign,
        attribution_model,
        cast(sum(attributed_opportunities) as double) as attributed_opportunities,
        cast(sum(attributed_pipeline_usd) as double) as attributed_pipeline_usd,
        cast(sum(attributed_won_deals) as double) as attributed_won_deals,
        cast(sum(attributed_bookings_usd) as double) as attributed_bookings_usd

    from (
        select * from pipeline
        union all
        select * from bookings
    ) as combined
    group by 1, 2, 3, 4

)

select * from final
