with

source as (

    select * from {{ source('salesforce', 'product2') }}

),

renamed as (

    select

        -- ids
        id as product_id,

        -- text
        name,
        product_code,
        family,

        -- booleans
        is_active,

        -- timestamps
        {{ utc_timestamp('created_date') }} as created_date,
        {{ utc_timestamp('system_modstamp') }} as system_modstamp

    from source
    where not coalesce(is_deleted, false) and {{ not_quarantined('id', 'Product2') }}

)

select * from renamed
