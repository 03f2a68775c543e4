with

source as (

    select * from {{ source('salesforce', 'user') }}

),

renamed as (

    select

        -- ids
        id as user_id,
        user_role_id,
        manager_id,

        -- text
        username,
        name,
        first_name,
        last_name,
        email,
        title,
        region_c as region,
        segment_c as segment,

        -- booleans
        is_active,

        -- dates
        hire_date_c as hire_date,
        termination_date_c as termination_date,

        -- timestamps
        {{ utc_timestamp('created_date') }} as created_date,
        {{ utc_timestamp('system_modstamp') }} as system_modstamp

    from source
    where {{ not_quarantined('id', 'User') }}

)

select * from renamed
