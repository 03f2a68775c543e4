{#- Deal-size band of a corporate-currency amount (win/loss analysis). Bands are closed-open. -#}
{% macro deal_size_band(amount_column) -%}
    case
        when {{ amount_column }} is null then 'Unknown'
        when {{ amount_column }} < 10000 then '1: < 10k'
        when {{ amount_column }} < 50000 then '2: 10k-50k'
        when {{ amount_column }} < 100000 then '3: 50k-100k'
        when {{ amount_column }} < 250000 then '4: 100k-250k'
        else '5: 250k+'
    end
{%- endmacro %}
