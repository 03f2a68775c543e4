with

source as (

    select * from {{ source('salesforce', 'opportunity_line_item') }}

),

renamed as (

    select

        -- ids
        id as opportunity_line_item_id,
        opportunity_id,
        product2_id as product_id,

        -- amounts (in the parent opportunity's currency)
        cast(quantity as double) as quantity,
        cast(unit_price as double) as unit_price,
        cast(total_price as double) as total_price,

        -- timestamps
        {{ utc_timestamp('created_date') }} as created_date,
        {{ utc_timestamp('system_modstamp') }} as system_modstamp

    from source
    where not coalesce(is_deleted, false) and {{ not_quarantined('id', 'OpportunityLineItem') }}

)

select * from renamed
