{#- A where-clause predicate keeping rows whose id the quality gate has not quarantined.
    Matches the object by its API name or snake_case table name (OpportunityHistory or
    opportunity_history). -#}
{% macro not_quarantined(id_column, object_name) -%}
    not exists (
        select 1
        from {{ source('quality', 'quarantine_ids') }} as quarantined
        where
            quarantined.record_id = {{ id_column }}
            and replace(lower(quarantined.object), '_', '')
            = '{{ object_name | lower | replace("_", "") }}'
    )
{%- endmacro %}
