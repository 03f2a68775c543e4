{#- Salesforce dated exchange rates: ConversionRate is units of the currency per one unit of the
    corporate currency, valid on [start_date, next_start_date). Amount in corporate currency =
    amount / rate at the given date. Falls back to the static CurrencyType rate, and to 1 for the
    corporate currency itself. Negative amounts (data errors) convert to null. Use with join_conversion_rate() under the same alias. -#}
{% macro join_conversion_rate(alias, currency_column, date_column) -%}
    left join {{ ref('stg_salesforce__dated_conversion_rates') }} as {{ alias }}_dated
        on
            {{ alias }}_dated.iso_code = {{ currency_column }}
            and {{ alias }}_dated.start_date <= {{ date_column }}
            and (
                {{ alias }}_dated.next_start_date is null
                or {{ alias }}_dated.next_start_date > {{ date_column }}
            )
    left join {{ ref('stg_salesforce__currency_types') }} as {{ alias }}_static
        on {{ alias }}_static.iso_code = {{ currency_column }}
{%- endmacro %}

{% macro to_corporate_currency(amount_column, currency_column, alias) -%}
    case
        -- a negative amount is a data error (quality gate counts it): no USD value
        when {{ amount_column }} < 0 then null
        when {{ currency_column }} = '{{ var("corporate_currency") }}'
            then {{ amount_column }}
        else
            {{ amount_column }}
            / coalesce({{ alias }}_dated.conversion_rate, {{ alias }}_static.conversion_rate)
    end
{%- endmacro %}
