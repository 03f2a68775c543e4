with

source as (

    select * from {{ source('marketing', 'touchpoints') }}

),

renamed as (

    select

        -- ids
        cast(touchpoint_id as varchar) as touchpoint_id,
        email_hash,

        -- dimensions
        channel,
        campaign,
        touch_type,
        {{ optional_column(source('marketing', 'touchpoints'), 'utm_source', 'varchar') }},
        {{ optional_column(source('marketing', 'touchpoints'), 'utm_medium', 'varchar') }},
        {{ optional_column(source('marketing', 'touchpoints'), 'utm_campaign', 'varchar') }},

        -- timestamps
        {{ utc_timestamp('occurred_at') }} as occurred_at

    from source

)

select * from renamed
