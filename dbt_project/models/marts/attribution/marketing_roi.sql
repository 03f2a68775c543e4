-- Marketing spend against attributed results per channel, month and rule-based model:
-- cost per opportunity, customer acquisition cost (spend per attributed won deal), ROAS
-- (attributed bookings per unit of spend) and pipeline per unit of spend. Spend is in USD
-- (stg_marketing__ad_spend.spend_usd). A channel-month with spend but no credit (or credit but no
-- spend) still appears; ratios with a zero denominator are null.

with

spend as (

    select
        cast({{ dbt.date_trunc('month', 'spend_date') }} as date) as month,
        channel,
        sum(spend_usd) as spend_usd,
        cast(sum(impressions) as bigint) as impressions,
        cast(sum(clicks) as bigint) as clicks

    from {{ ref('stg_marketing__ad_spend') }}
    group by 1, 2

),

attributed as (

    select
        month,
        channel,
        attribution_model,
        sum(attributed_opportunities) as attributed_opportunities,
        sum(attributed_pipeline_usd) as attributed_pipeline_usd,
        sum(attributed_won_deals) as attributed_won_deals,
        sum(attributed_bookings_usd) as attributed_bookings_usd

    from {{ ref('channel_attribution') }}
    group by 1, 2, 3

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

grid as (

    -- every model sees every channel-month that has spend or credit
    select attributed.month, attributed.channel, attributed.attribution_model
    from attributed

    union

    select spend.month, spend.channel, models.attribution_model
    from spend
    cross join models

),

final as (

    select
        grid.month,
        grid.channel,
        grid.attribution_model,

        -- spend
        cast(coalesce(spend.spend_usd, 0) as double) as spend_usd,
        spend.impressions,
        spend.clicks,

        -- attributed results
        cast(coalesce(attributed.attributed_opportunities, 0) as double)
            as attributed_opportunities,
        cast(coalesce(attributed.attributed_pipeline_usd, 0) as double)
            as attributed_pipeline_usd,
        cast(coalesce(attributed.attributed_won_deals, 0) as double) as attributed_won_deals,
        cast(coalesce(attributed.attributed_bookings_usd, 0) as double)
            as attributed_bookings_usd,

        -- ratios
        cast(spend.spend_usd / nullif(attributed.attributed_opportunities, 0) as double)
            as cost_per_opportunity_usd,
        cast(spend.spend_usd / nullif(attributed.attributed_won_deals, 0) as double)
            as cac_usd,
        cast(attributed.attributed_bookings_usd / nullif(spend.spend_usd, 0) as double) as roas,
        cast(attributed.attributed_pipeline_usd / nullif(spend.spend_usd, 0) as double)
            as pipeline_per_spend

    from grid
    left join spend
        on grid.month = spend.month and grid.channel = spend.channel
    left join attributed
        on
            grid.month = attributed.month
            and grid.channel = attributed.channel
            and grid.attribution_model = attributed.attribution_model

)

select * from final
