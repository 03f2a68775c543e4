with

source as (

    select * from {{ source('salesforce', 'dated_conversion_rate') }}

),

renamed as (

    select

        -- ids
        id as dated_conversion_rate_id,

        -- text
        iso_code,

        -- numerics (units of iso_code per one unit of the corporate currency)
        cast(conversion_rate as double) as conversion_rate,

        -- dates (valid on [start_date, next_start_date))
        start_date,
        next_start_date,

        -- timestamps
        {{ utc_timestamp('created_date') }} as created_date,
        {{ utc_timestamp('system_modstamp') }} as system_modstamp

    from source
    where {{ not_quarantined('id', 'DatedConversionRate') }}

)

select * from renamed
