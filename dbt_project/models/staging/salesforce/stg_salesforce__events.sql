with

source as (

    select * from {{ source('salesforce', 'event') }}

),

renamed as (

    select

        -- ids
        id as event_id,
        owner_id,
        who_id,
        what_id,

        -- text
        subject,
        type,

        -- numerics
        duration_in_minutes,

        -- dates
        activity_date,

        -- timestamps
        {{ utc_timestamp('start_date_time') }} as start_date_time,
        {{ utc_timestamp('end_date_time') }} as end_date_time,
        {{ utc_timestamp('created_date') }} as created_date,
        {{ utc_timestamp('system_modstamp') }} as system_modstamp

    from source
    where not coalesce(is_deleted, false) and {{ not_quarantined('id', 'Event') }}

)

select * from renamed
