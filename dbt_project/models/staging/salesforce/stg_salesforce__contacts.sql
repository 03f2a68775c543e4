with

source as (

    select * from {{ source('salesforce', 'contact') }}

),

renamed as (

    select

        -- ids
        id as contact_id,
        account_id,
        owner_id,
        {{ email_hash('email') }} as email_hash,

        -- text
        first_name,
        last_name,
        email,
        title,
        lead_source,

        -- timestamps
        {{ utc_timestamp('created_date') }} as created_date,
        {{ utc_timestamp('system_modstamp') }} as system_modstamp

    from source
    where not coalesce(is_deleted, false) and {{ not_quarantined('id', 'Contact') }}

)

select * from renamed
