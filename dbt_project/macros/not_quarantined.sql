{#- A where-clause predicate keeping rows whose id the quality gate has not quarantined.
    Matches the object by its API name or snake_case table name (OpportunityHistory or
    opportunity_history). Uncorrelated (an anti-join DuckDB can plan after other filters). -#}
{% macro not_quarantined(id_column, object_name) -%}
    ({{ id_column }} is null or {{ id_column }} not in (
        select quarantined.record_id
        from {{ source('quality', 'quarantine_ids') }} as quarantined
        where
            quarantined.record_id is not null
            and replace(lower(quarantined.object), '_', '')
            = '{{ object_name | lower | replace("_", "") }}'
    ))
{%- endmacro %}
