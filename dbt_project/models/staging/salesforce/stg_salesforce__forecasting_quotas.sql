with

source as (

    select * from {{ source('salesforce', 'forecasting_quota') }}

),

renamed as (

    select

        -- ids
        id as forecasting_quota_id,
        quota_owner_id,

        -- text
        currency_iso_code,

        -- amounts
        cast(quota_amount as double) as quota_amount,

        -- dates
        start_date,

        -- timestamps
        {{ utc_timestamp('created_date') }} as created_date,
        {{ utc_timestamp('system_modstamp') }} as system_modstamp

    from source
    where not coalesce(is_deleted, false) and {{ not_quarantined('id', 'ForecastingQuota') }}

),

converted as (

    select
        renamed.*,
        round(
            {{ to_corporate_currency(
                'renamed.quota_amount', 'renamed.currency_iso_code', 'rate'
            ) }},
            2
        ) as quota_amount_usd

    from renamed
    {{ join_conversion_rate('rate', 'renamed.currency_iso_code', 'renamed.start_date') }}

)

select * from converted
