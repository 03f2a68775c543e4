{#- dbt's relationships test (every non-null `column_name` of `model` is a `field` of `to`), with
    one change: when `model` is a scoped subquery (a `where:` scope of macros/staging_tests.sql
    or macros/incremental_tests.sql), the parent side reads only the keys the scoped child rows
    reference, instead of the whole parent. Same failing rows either way: a child row joins only
    parents with its own key. Whole child: dbt's SQL unchanged. -#}
{% test relationships(model, column_name, to, field) %}

    {%- set scoped = 'dbt_subquery' in (model | string) %}

with child as (
    select {{ column_name }} as from_field
    from {{ model }}
    where {{ column_name }} is not null
),

parent as (
    select {{ field }} as to_field
    from {{ to }}
    {%- if scoped %}
    where {{ field }} in (select child.from_field from child)
    {%- endif %}
)

select
    child.from_field

from child
left join parent
    on child.from_field = parent.to_field

where parent.to_field is null

{% endtest %}
