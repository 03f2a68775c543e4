{#- The salted person key shared with the marketing loader:
    sha256 hex of salt || lower(trim(email)); null when there is no email. -#}
{% macro email_hash(column) -%}
    {{ return(adapter.dispatch('email_hash')(column)) }}
{%- endmacro %}

{% macro default__email_hash(column) -%}
    case
        when nullif(trim({{ column }}), '') is not null
            then sha2('{{ var("email_salt") }}' || lower(trim({{ column }})), 256)
    end
{%- endmacro %}

{% macro duckdb__email_hash(column) -%}
    case
        when nullif(trim({{ column }}), '') is not null
            then sha256('{{ var("email_salt") }}' || lower(trim({{ column }})))
    end
{%- endmacro %}

{#- True exactly when email_hash(column) is not null, without hashing: a filter on the hash
    itself is pushed down to the scan by DuckDB and hashes every row (a second time, the
    projection hashes again). -#}
{% macro has_email_hash(column) -%}
    nullif(trim({{ column }}), '') is not null
{%- endmacro %}
