with

source as (

    select * from {{ source('salesforce', 'task') }}

),

renamed as (

    select

        -- ids
        id as task_id,
        owner_id,
        who_id,
        what_id,

        -- text
        subject,
        task_subtype,
        status,

        -- numerics
        call_duration_in_seconds,

        -- dates
        activity_date,

        -- timestamps
        {{ utc_timestamp('created_date') }} as created_date,
        {{ utc_timestamp('system_modstamp') }} as system_modstamp

    from source
    where not coalesce(is_deleted, false) and {{ not_quarantined('id', 'Task') }}

)

select * from renamed
