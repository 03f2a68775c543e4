{#- Every month start from start to end (inclusive), as rows of one date column. -#}
{% macro month_series(start_date, end_date, column_name) -%}
    {{ return(adapter.dispatch('month_series')(start_date, end_date, column_name)) }}
{%- endmacro %}

{% macro duckdb__month_series(start_date, end_date, column_name) -%}
    cast(
        unnest(
            generate_series(
                cast({{ start_date }} as timestamp),
                cast({{ end_date }} as timestamp),
                to_months(1)
            )
        ) as date
    ) as {{ column_name }}
{%- endmacro %}
