-- The primary product family of each opportunity: the family with the largest line-item total
-- (ties broken by family name). Incremental by opportunity (macros/incremental_by_opportunity.sql):
-- its inputs are the opportunity's line items and their products (`line_items=true`); line items
-- without an opportunity have no primary family to give and are left out.

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook="{{ opportunity_incremental_pre_hook(
            history=false, owners=false, line_items=true,
        ) }}",
        post_hook="{{ opportunity_incremental_post_hook() }}",
    )
}}

with

line_items as (

    select * from {{ ref('stg_salesforce__opportunity_line_items') }}
    where opportunity_id is not null and {{ changed_opportunity_filter('opportunity_id') }}

),

products as (

    select * from {{ ref('stg_salesforce__products') }}

),

families as (

    select
        line_items.opportunity_id,
        coalesce(products.family, 'Unknown') as product_family,
        -- summed as decimals: exact, so the same in any row order (a full build and an
        -- incremental one read the line items in different orders; a double sum could differ in
        -- the last bit and flip the ranking of two families with equal totals)
        cast(
            sum(cast(coalesce(line_items.total_price, 0) as decimal(38, 9))) as double
        ) as family_total,
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
