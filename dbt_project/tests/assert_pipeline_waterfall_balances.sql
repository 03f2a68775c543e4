-- The waterfall must balance to the cent in every row:
-- start + created + pulled_in + increased - decreased - won - lost - slipped_out = end.
select
    week_start,
    close_quarter,
    segment,
    start_usd + created_usd + pulled_in_usd + increased_usd
    - decreased_usd - won_usd - lost_usd - slipped_out_usd - end_usd as imbalance_usd

from {{ ref('pipeline_waterfall') }}
where
    start_usd + created_usd + pulled_in_usd + increased_usd
    - decreased_usd - won_usd - lost_usd - slipped_out_usd != end_usd
