{#- Fails on duplicate combinations of the given columns (nulls compare equal). -#}
{% test unique_combination(model, columns) %}

    select
        {{ columns | join(', ') }},
        count(*) as occurrences
    from {{ model }}
    group by {{ columns | join(', ') }}
    having count(*) > 1

{% endtest %}
