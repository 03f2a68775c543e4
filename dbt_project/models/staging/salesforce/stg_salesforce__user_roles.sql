with

source as (

    select * from {{ source('salesforce', 'user_role') }}

),

renamed as (

    select

        -- ids
        id as user_role_id,
        parent_role_id,

        -- text
        name,
        developer_name,

        -- timestamps
        {{ utc_timestamp('created_date') }} as created_date,
        {{ utc_timestamp('system_modstamp') }} as system_modstamp

    from source
    where {{ not_quarantined('id', 'UserRole') }}

)

select * from renamed
