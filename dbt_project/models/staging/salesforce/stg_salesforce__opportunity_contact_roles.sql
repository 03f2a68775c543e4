with

source as (

    select * from {{ source('salesforce', 'opportunity_contact_role') }}

),

renamed as (

    select

        -- ids
        id as opportunity_contact_role_id,
        opportunity_id,
        contact_id,

        -- text
        role,

        -- booleans
        is_primary,

        -- timestamps
        {{ utc_timestamp('created_date') }} as created_date,
        {{ utc_timestamp('system_modstamp') }} as system_modstamp

    from source
    where not coalesce(is_deleted, false) and {{ not_quarantined('id', 'OpportunityContactRole') }}

)

select * from renamed
