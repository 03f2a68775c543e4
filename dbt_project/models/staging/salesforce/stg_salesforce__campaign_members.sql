with

source as (

    select * from {{ source('salesforce', 'campaign_member') }}

),

renamed as (

    select

        -- ids
        id as campaign_member_id,
        campaign_id,
        lead_id,
        contact_id,

        -- text
        status,

        -- booleans
        has_responded,

        -- dates
        first_responded_date,

        -- timestamps
        {{ utc_timestamp('created_date') }} as created_date,
        {{ utc_timestamp('system_modstamp') }} as system_modstamp

    from source
    where not coalesce(is_deleted, false) and {{ not_quarantined('id', 'CampaignMember') }}

)

select * from renamed
