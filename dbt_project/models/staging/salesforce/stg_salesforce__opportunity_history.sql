with

source as (

    select * from {{ source('salesforce', 'opportunity_history') }}

),

renamed as (

    select

        -- ids
        id as opportunity_history_id,
        opportunity_id,
        created_by_id,

        -- text
        stage_name,
        forecast_category,

        -- amounts
        cast(amount as double) as amount,
        -- Salesforce stores percent 0-100; everything downstream uses a 0-1 fraction.
        cast(probability as double) / 100.0 as probability,

        -- dates
        close_date,

        -- timestamps
        {{ utc_timestamp('created_date') }} as created_date,
        {{ utc_timestamp('system_modstamp') }} as system_modstamp

    from source
    where not coalesce(is_deleted, false) and {{ not_quarantined('id', 'OpportunityHistory') }}

)

select * from renamed
