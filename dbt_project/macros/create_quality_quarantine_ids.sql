{#- on-run-start: the quality gate owns quality.quarantine_ids; create it empty when the gate has
    not run yet so staging's anti-join compiles and runs on a fresh warehouse. -#}
{% macro create_quality_quarantine_ids() -%}
    create schema if not exists quality;
    create table if not exists quality.quarantine_ids (
        object varchar,
        record_id varchar,
        rule varchar,
        reason varchar,
        detected_at timestamp
    )
{%- endmacro %}
