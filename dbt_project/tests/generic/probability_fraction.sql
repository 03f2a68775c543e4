{#- Fails on probabilities outside [0, 1], e.g. Salesforce's raw 0-100 percent leaking through. -#}
{% test probability_fraction(model, column_name) %}

    select {{ column_name }} as probability
    from {{ model }}
    where {{ column_name }} < 0 or {{ column_name }} > 1

{% endtest %}
