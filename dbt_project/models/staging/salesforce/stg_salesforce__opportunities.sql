with

source as (

    select * from {{ source('salesforce', 'opportunity') }}

),

renamed as (

    select

        -- ids
        id as opportunity_id,
        account_id,
        owner_id,
        campaign_id,

        -- text
        name,
        stage_name,
        forecast_category_name,
        type,
        lead_source,
        competitor_c as competitor,
        loss_reason_c as loss_reason,
        currency_iso_code,

        -- amounts
        cast(amount as double) as amount,
        -- Salesforce stores percent 0-100; everything downstream uses a 0-1 fraction.
        cast(probability as double) / 100.0 as probability,

        -- booleans
        is_closed,
        is_won,

        -- dates
        close_date,

        -- timestamps
        {{ utc_timestamp('created_date') }} as created_date,
        {{ utc_timestamp('last_modified_date') }} as last_modified_date,
        {{ utc_timestamp('system_modstamp') }} as system_modstamp

    from source
    where not coalesce(is_deleted, false) and {{ not_quarantined('id', 'Opportunity') }}

),

converted as (

    select
        renamed.*,
        round(
            {{ to_corporate_currency('renamed.amount', 'renamed.currency_iso_code', 'rate') }},
            2
        ) as amount_usd

    from renamed
    {{ join_conversion_rate('rate', 'renamed.currency_iso_code', 'renamed.close_date') }}

)

select * from converted
