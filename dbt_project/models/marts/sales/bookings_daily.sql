-- Closed-won bookings per day (close date), segment and region, in the corporate currency.

with

won as (

    select * from {{ ref('opportunities') }}
    where is_won

)

select
    close_date as booking_date,
    segment,
    region,
    '{{ var("corporate_currency") }}' as currency,
    sum(amount_usd) as bookings_usd,
    count(*) as deals_won

from won
group by close_date, segment, region
