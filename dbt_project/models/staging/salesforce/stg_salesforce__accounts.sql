with

source as (

    select * from {{ source('salesforce', 'account') }}

),

renamed as (

    select

        -- ids
        id as account_id,
        owner_id,

        -- text
        name,
        type,
        industry,
        billing_country,
        segment_c as segment,
        region_c as region,
        currency_iso_code,

        -- numerics
        number_of_employees,
        annual_revenue,

        -- timestamps
        {{ utc_timestamp('created_date') }} as created_date,
        {{ utc_timestamp('system_modstamp') }} as system_modstamp

    from source
    where not coalesce(is_deleted, false) and {{ not_quarantined('id', 'Account') }}

)

select * from renamed
