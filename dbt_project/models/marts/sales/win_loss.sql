-- Win/loss of closed deals per close quarter along one dimension at a time (long format):
-- competitor, loss reason, segment, product family and deal-size band. Win rates on closed deals
-- only, by count and by USD amount.

with

closed as (

    select * from {{ ref('opportunities') }}
    where is_closed

),

{%- set dimensions = [
    ('competitor', "coalesce(competitor, 'None')"),
    ('loss_reason', "coalesce(loss_reason, case when is_won then 'Won' else 'Unknown' end)"),
    ('segment', "coalesce(segment, 'Unknown')"),
    ('product_family', 'product_family'),
    ('deal_size_band', 'deal_size_band'),
] %}

unpivoted as (

    {%- for name, expression in dimensions %}

    select
        '{{ name }}' as dimension,
        {{ expression }} as dimension_value,
        cast({{ dbt.date_trunc('quarter', 'close_date') }} as date) as close_quarter,
        is_won,
        amount_usd,
        cycle_days

    from closed
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}

)

select
    dimension,
    dimension_value,
    close_quarter,
    count(case when is_won then 1 end) as won_count,
    count(case when not is_won then 1 end) as lost_count,
    coalesce(sum(case when is_won then amount_usd end), 0) as won_usd,
    coalesce(sum(case when not is_won then amount_usd end), 0) as lost_usd,
    count(case when is_won then 1 end) * 1.0 / count(*) as win_rate_count,
    coalesce(sum(case when is_won then amount_usd end), 0)
    / nullif(coalesce(sum(amount_usd), 0), 0) as win_rate_amount,
    avg(case when is_won then amount_usd end) as avg_won_deal_usd,
    avg(cycle_days) as avg_cycle_days

from unpivoted
group by dimension, dimension_value, close_quarter
