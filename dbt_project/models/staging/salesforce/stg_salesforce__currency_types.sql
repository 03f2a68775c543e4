with

source as (

    select * from {{ source('salesforce', 'currency_type') }}

),

renamed as (

    select

        -- ids
        id as currency_type_id,

        -- text
        iso_code,

        -- numerics
        cast(conversion_rate as double) as conversion_rate,
        decimal_places,

        -- booleans
        is_active,
        is_corporate,

        -- timestamps
        {{ utc_timestamp('created_date') }} as created_date,
        {{ utc_timestamp('system_modstamp') }} as system_modstamp

    from source
    where {{ not_quarantined('id', 'CurrencyType') }}

)

select * from renamed
