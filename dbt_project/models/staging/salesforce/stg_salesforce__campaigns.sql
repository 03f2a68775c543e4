with

source as (

    select * from {{ source('salesforce', 'campaign') }}

),

renamed as (

    select

        -- ids
        id as campaign_id,

        -- text
        name,
        type,
        status,
        channel_c as channel,

        -- amounts
        budgeted_cost,
        actual_cost,

        -- dates
        start_date,
        end_date,

        -- timestamps
        {{ utc_timestamp('created_date') }} as created_date,
        {{ utc_timestamp('system_modstamp') }} as system_modstamp

    from source
    where not coalesce(is_deleted, false) and {{ not_quarantined('id', 'Campaign') }}

)

select * from renamed
