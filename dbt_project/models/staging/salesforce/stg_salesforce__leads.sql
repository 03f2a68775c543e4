with

source as (

    select * from {{ source('salesforce', 'lead') }}

),

renamed as (

    select

        -- ids
        id as lead_id,
        owner_id,
        converted_account_id,
        converted_contact_id,
        converted_opportunity_id,
        {{ email_hash('email') }} as email_hash,

        -- text
        first_name,
        last_name,
        email,
        company,
        status,
        lead_source,
        segment_c as segment,

        -- booleans
        is_converted,

        -- dates
        converted_date,
        mql_date_c as mql_date,
        sql_date_c as sql_date,

        -- timestamps
        {{ utc_timestamp('created_date') }} as created_date,
        {{ utc_timestamp('system_modstamp') }} as system_modstamp

    from source
    where not coalesce(is_deleted, false) and {{ not_quarantined('id', 'Lead') }}

)

select * from renamed
