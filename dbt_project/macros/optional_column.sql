{#- Select a column the source contract marks optional: the column when the relation has it,
    else a typed null under the same name (checked against the warehouse at run time). -#}
{% macro optional_column(relation, column_name, data_type) -%}
    {%- set present = [] -%}
    {%- if execute -%}
        {%- for column in adapter.get_columns_in_relation(relation) -%}
            {%- if column.name | lower == column_name | lower -%}
                {%- do present.append(column.name) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if present -%}
        cast({{ column_name }} as {{ data_type }}) as {{ column_name }}
    {%- else -%}
        cast(null as {{ data_type }}) as {{ column_name }}
    {%- endif -%}
{%- endmacro %}
