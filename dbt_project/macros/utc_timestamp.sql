{#- A Salesforce datetime (loaded by dlt as timestamp with time zone) as a naive UTC timestamp. -#}
{% macro utc_timestamp(column) -%}
    {{ return(adapter.dispatch('utc_timestamp')(column)) }}
{%- endmacro %}

{% macro default__utc_timestamp(column) -%}
    cast({{ column }} as {{ dbt.type_timestamp() }})
{%- endmacro %}

{% macro duckdb__utc_timestamp(column) -%}
    cast(timezone('UTC', cast({{ column }} as timestamptz)) as timestamp)
{%- endmacro %}
