{#- Schemas are exactly the configured custom schema (staging, intermediate, marts), never
    prefixed with the target schema, so Dagster keys and analyst queries are stable. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
