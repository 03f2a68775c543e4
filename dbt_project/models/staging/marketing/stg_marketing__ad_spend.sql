with

source as (

    select * from {{ source('marketing', 'ad_spend') }}

),

renamed as (

    select

        -- dimensions
        cast(date as date) as spend_date,
        channel,
        campaign,
        currency,

        -- amounts
        cast(spend as double) as spend,
        {{ optional_column(source('marketing', 'ad_spend'), 'impressions', 'bigint') }},
        {{ optional_column(source('marketing', 'ad_spend'), 'clicks', 'bigint') }}

    from source

),

converted as (

    select
        renamed.*,
        round(
            {{ to_corporate_currency('renamed.spend', 'renamed.currency', 'rate') }}, 2
        ) as spend_usd

    from renamed
    {{ join_conversion_rate('rate', 'renamed.currency', 'renamed.spend_date') }}

)

select * from converted
