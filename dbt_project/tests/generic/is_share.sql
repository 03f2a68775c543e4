{#- Fails on rates/shares outside [0, 1] (nulls allowed: a rate with an empty denominator). -#}
{% test is_share(model, column_name) %}

    select {{ column_name }} as share
    from {{ model }}
    where {{ column_name }} < 0 or {{ column_name }} > 1

{% endtest %}
