-- The primary product family of each opportunity: the family with the largest line-item total
-- (ties broken by family name).

with

line_items as (

    select * from {{ ref('stg_salesforce__opportunity_line_items') }}

),

products as (

    select * from {{ ref('stg_salesforce__products') }}

),

families as (

    select
        line_items.opportunity_id,
        coalesce(products.family, 'Unknown') as product_family,
        sum(coalesce(line_items.total_price, 0)) as family_total,
        count(*) as line_items

    from line_items
    left join products
        on line_items.product_id = products.product_id
    group by line_items.opportunity_id, coalesce(products.family, 'Unknown')

),

ranked as (

    select
        opportunity_id,
        product_family,
        family_total,
        line_items,
        row_number() over (
            partition by opportunity_id
            order by family_total desc, product_family asc
        ) as family_rank

    from families

)

select
    opportunity_id,
    product_family,
    family_total,
    line_items

from ranked
where family_rank = 1
