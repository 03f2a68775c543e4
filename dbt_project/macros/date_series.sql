{#- Every date from start to end (inclusive) stepping step_days, as rows of one date column.
    Used on one-row bound queries; DuckDB has no portable equivalent in dbt core with bounds only
    known at run time (dbt.date_spine needs them at compile time). -#}
{% macro date_series(start_date, end_date, step_days, column_name) -%}
    {{ return(adapter.dispatch('date_series')(start_date, end_date, step_days, column_name)) }}
{%- endmacro %}

{% macro duckdb__date_series(start_date, end_date, step_days, column_name) -%}
    cast(
        unnest(
            generate_series(
                cast({{ start_date }} as timestamp),
                cast({{ end_date }} as timestamp),
                to_days({{ step_days }})
            )
        ) as date
    ) as {{ column_name }}
{%- endmacro %}
