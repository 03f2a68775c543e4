{#- Incremental models keyed by opportunity (docs/MARTS.md, "Incremental models").

    A model built with these macros is `materialized='incremental'`, `incremental_strategy=
    'append'`. On an incremental run its pre-hook writes the ids of every opportunity whose rows
    may differ from the last build into a scratch table and deletes all their rows from the
    target; the model body (filtered with `changed_opportunity_filter`) then selects every row of
    those opportunities only, and the append inserts them. The post-hook records what the build
    saw (watermarks, fingerprint, quarantined ids) in intermediate.incremental_state and
    intermediate.incremental_quarantine_seen, and the recomputed ids in
    intermediate.incremental_changed (the scope of its data tests: macros/incremental_tests.sql).
    A full build (first run or --full-refresh) skips the pre-hook and records the same state.

    An opportunity is "changed" when, since the last build of THIS model, and for the inputs the
    model reads (flags history, owners, people):
      * its raw Opportunity row, (history) one of its OpportunityHistory rows, (owners) its Account
        or its owner User has a newer dlt `_dlt_load_id` (new, updated or deleted: dlt merges
        deleted rows with is_deleted = true and a new load id);
      * (people) one of its OpportunityContactRole rows, its converted Lead or a Contact linked by
        a role has a newer load id, or a touchpoint loaded after the last build
        (marketing.touchpoints.loaded_at) has the email hash of one of those people;
      * a dated conversion rate of its currency with a newer load id starts on or before one of
        its close dates (the rates of those dates may have changed);
      * one of those records entered or left quality.quarantine_ids.
    Everything is rebuilt (all ids changed) when there is no recorded state, the fingerprint
    (model file checksum, vars, stage seed, CurrencyType, conversion-rate quarantine) changed,
    touchpoints were deleted or replaced, the touchpoints table has no loaded_at column, or (for
    weekly snapshots) the as-of date went back or the first week moved.
    Changes to a macro used by these models are not detected: run `dbt build --full-refresh`.
    Relations are named, not ref()'d: a ref in a hook would become a dependency that every unit
    test of the model must give a fixture for (the staging views are upstream of all of them). -#}

{% macro incremental_state_relation() -%}
    intermediate.incremental_state
{%- endmacro %}

{% macro incremental_quarantine_relation() -%}
    intermediate.incremental_quarantine_seen
{%- endmacro %}

{#- on-run-start: the bookkeeping tables (kept outside dbt's graph: no model owns them). -#}
{% macro create_incremental_state() -%}
    create schema if not exists intermediate;
    create table if not exists {{ incremental_state_relation() }} (
        model varchar,
        load_id varchar,
        fingerprint varchar,
        touchpoints_loaded_at timestamp,
        touchpoints_rows bigint,
        first_week_start date,
        as_of_date date,
        built_at timestamp,
        -- opportunities recomputed by the last build (null: full build)
        changed_opportunities bigint,
        -- this build (dbt invocation_id) and the build whose state row it replaced: the rows
        -- of the model differ from that build's exactly by the rows of the opportunities in
        -- incremental_changed (and, weekly snapshots, the rows dated after
        -- previous_as_of_date). Null previous_build_id: a full build (reports/publish.py)
        build_id varchar,
        previous_build_id varchar,
        previous_as_of_date date
    );
    -- warehouses made before these columns existed
    alter table {{ incremental_state_relation() }} add column if not exists build_id varchar;
    alter table {{ incremental_state_relation() }}
    add column if not exists previous_build_id varchar;
    alter table {{ incremental_state_relation() }}
    add column if not exists previous_as_of_date date;
    create table if not exists {{ incremental_quarantine_relation() }} (
        model varchar,
        object varchar,
        record_id varchar
    );
    -- the opportunities each model's last incremental build recomputed (none after a full
    -- build): the scope of its data tests on the next run (macros/incremental_tests.sql)
    create table if not exists {{ changed_ids_relation() }} (
        model varchar,
        opportunity_id varchar
    )
{%- endmacro %}

{#- Scratch table of the changed ids: in intermediate for every model (nothing extra in marts,
    which is published as a whole), dropped by the post-hook. -#}
{%- macro _changes_scratch_relation() -%}
    intermediate."{{ this.schema }}__{{ this.identifier }}__changed_opportunities"
{%- endmacro -%}

{%- macro _model_key() -%}
    '{{ this.schema }}.{{ this.identifier }}'
{%- endmacro -%}

{#- True when marketing.touchpoints has the loader's loaded_at column (new touches are known). -#}
{%- macro _touchpoints_have_loaded_at() -%}
    {%- if not execute -%}{{ return(false) }}{%- endif -%}
    {%- set relation = adapter.get_relation(
        database=target.database, schema='marketing', identifier='touchpoints'
    ) -%}
    {%- if relation is none -%}{{ return(false) }}{%- endif -%}
    {%- for column in adapter.get_columns_in_relation(relation) -%}
        {%- if column.name | lower == 'loaded_at' -%}{{ return(true) }}{%- endif -%}
    {%- endfor -%}
    {{ return(false) }}
{%- endmacro -%}

{#- Everything a build depends on besides row-level data: a change means rebuild all. -#}
{%- macro _incremental_fingerprint() -%}
    md5(
        '{{ model.checksum.checksum if model.checksum is mapping else "" }}'
        || '|{{ var("corporate_currency") }}|{{ var("email_salt") }}'
        || '|{{ var("attribution_lookback_days", 365) }}|{{ var("attribution_half_life_days", 7) }}'
        || '|{{ var("as_of_date", "") }}|'
        || coalesce((
            select string_agg(cast(s as varchar), ';' order by cast(s as varchar))
            from staging.opportunity_stages as s
        ), '')
        || '|'
        || coalesce((
            select string_agg(cast(c as varchar), ';' order by cast(c as varchar))
            from salesforce.currency_type as c
        ), '')
        || '|'
        || coalesce((
            select string_agg(q.record_id, ';' order by q.record_id)
            from quality.quarantine_ids as q
            where
                replace(lower(q.object), '_', '')
                in ('datedconversionrate', 'currencytype')
        ), '')
    )
{%- endmacro -%}

{%- macro _latest_load_id() -%}
    (
        select max(load_id) from (
            {%- for table in [
                'opportunity', 'opportunity_history', 'opportunity_contact_role', 'lead',
                'contact', 'account', '"user"', 'dated_conversion_rate',
                'opportunity_line_item', 'product2',
            ] %}
            select max(_dlt_load_id) as load_id from salesforce.{{ table }}
            {%- if not loop.last %} union all{% endif %}
            {%- endfor %}
        ) as loads
    )
{%- endmacro -%}

{#- True when every model of `upstream` (keys 'schema.identifier' of opportunity-keyed
    incremental models this model reads, and nothing else that changes by opportunity) was
    built incrementally in this dbt invocation and its previous build was this model's last
    build. Their recomputed ids (intermediate.incremental_changed) are then exactly the
    opportunities whose input rows may differ from what this model read last time: the model
    takes them instead of detecting changes in the raw tables again. -#}
{%- macro _upstream_chain_holds(upstream) -%}
    {%- if not upstream or not execute -%}{{ return(false) }}{%- endif -%}
    {%- set check -%}
        select count(*)
        from {{ incremental_state_relation() }} as up
        inner join {{ incremental_state_relation() }} as me
            on me.model = {{ _model_key() }} and up.previous_build_id = me.build_id
        where
            up.model in ('{{ upstream | join("', '") }}')
            and up.build_id = '{{ invocation_id }}'
    {%- endset -%}
    {%- set holding = run_query(check).columns[0].values()[0] -%}
    {{ return(holding == upstream | length) }}
{%- endmacro -%}

{#- The ids of every opportunity whose rows may differ from the last build (see the top). -#}
{% macro changed_opportunities_sql(
    people=false, weeks=none, history=true, owners=true, line_items=false, upstream=none
) -%}
    {%- set with_loaded_at = _touchpoints_have_loaded_at() -%}
    {%- set from_upstream = _upstream_chain_holds(upstream) -%}
with

prior as (

    select * from {{ incremental_state_relation() }} where model = {{ _model_key() }}

),

watermark as (

    select coalesce(max(load_id), '') as load_id from prior

),

rebuild as (

    select
        count(*) = 0
        or coalesce(bool_or(prior.fingerprint is distinct from {{ _incremental_fingerprint() }}), true)
        {%- if people %}
        {%- if with_loaded_at %}
        or coalesce(bool_or(
            prior.touchpoints_rows is distinct from (
                select count(*) from marketing.touchpoints as t
                where t.loaded_at <= prior.touchpoints_loaded_at
            )
        ), true)
        {%- else %}
        or true
        {%- endif %}
        {%- endif %}
        {%- if weeks %}
        or coalesce(bool_or(
            prior.as_of_date > (select max(w.as_of_date) from {{ ref(weeks) }} as w)
            or prior.first_week_start is distinct from (
                select min(w.week_start) from {{ ref(weeks) }} as w
            )
        ), true)
        {%- endif %}
        as rebuild_all

    from prior

),

{%- if not from_upstream %}

changed_rates as (

    select rates.iso_code, min(rates.start_date) as since
    from salesforce.dated_conversion_rate as rates, watermark
    where rates._dlt_load_id > watermark.load_id
    group by rates.iso_code

),

quarantine_now as (

    select replace(lower(object), '_', '') as object, record_id
    from quality.quarantine_ids

),

quarantine_seen as (

    select object, record_id
    from {{ incremental_quarantine_relation() }}
    where model = {{ _model_key() }}

),

quarantine_flipped as (

    (select * from quarantine_now except select * from quarantine_seen)
    union
    (select * from quarantine_seen except select * from quarantine_now)

),

{%- if people %}

new_touches as (

    select t.email_hash, min({{ utc_timestamp('t.occurred_at') }}) as first_at
    from marketing.touchpoints as t, prior
    where t.loaded_at > prior.touchpoints_loaded_at and t.email_hash is not null
    group by t.email_hash

),

-- a touch reaches a journey only before the day after its close date: the deals that closed
-- before the earliest new touch keep their journeys, and only the people of the others are
-- hashed (hashing every lead and contact was most of this query at large)
touch_candidates as (

    select o.id as opportunity_id
    from salesforce.opportunity as o
    where
        o.close_date
        >= cast({{ dbt.dateadd('day', -1, '(select min(first_at) from new_touches)') }} as date)

),

touched_people as (

    select l.converted_opportunity_id as opportunity_id, l.email
    from salesforce.lead as l
    inner join touch_candidates as c on l.converted_opportunity_id = c.opportunity_id

    union all

    select r.opportunity_id, p.email
    from salesforce.opportunity_contact_role as r
    inner join touch_candidates as c on r.opportunity_id = c.opportunity_id
    inner join salesforce.contact as p on r.contact_id = p.id

),
{%- endif %}
{%- endif %}

changed as (
    {%- if from_upstream %}

    -- what the upstream models recomputed in this run (their previous build was this model's
    -- last build: every row they did not recompute is the one this model read then)
    select upstream.opportunity_id
    from {{ changed_ids_relation() }} as upstream
    where upstream.model in ('{{ upstream | join("', '") }}')
    {%- else %}

    -- the opportunity itself
    select o.id as opportunity_id
    from salesforce.opportunity as o, watermark
    where o._dlt_load_id > watermark.load_id

    {%- if history %}

    union

    select h.opportunity_id
    from salesforce.opportunity_history as h, watermark
    where h._dlt_load_id > watermark.load_id
    {%- endif %}
    {%- if owners %}

    union

    -- its account and owner (segment, region, owner, manager)
    select o.id
    from salesforce.opportunity as o
    inner join salesforce.account as a on o.account_id = a.id
    cross join watermark
    where a._dlt_load_id > watermark.load_id

    union

    select o.id
    from salesforce.opportunity as o
    inner join salesforce."user" as u on o.owner_id = u.id
    cross join watermark
    where u._dlt_load_id > watermark.load_id
    {%- endif %}

    union

    -- conversion rates valid on one of its close dates
    select o.id
    from salesforce.opportunity as o
    inner join changed_rates as r
        on o.currency_iso_code = r.iso_code and o.close_date >= r.since

    {%- if history %}

    union

    select h.opportunity_id
    from salesforce.opportunity_history as h
    inner join salesforce.opportunity as o on h.opportunity_id = o.id
    inner join changed_rates as r
        on o.currency_iso_code = r.iso_code and h.close_date >= r.since
    {%- endif %}

    union

    -- quarantine flips
    select record_id from quarantine_flipped where object = 'opportunity'
    {%- if history %}

    union

    select h.opportunity_id
    from salesforce.opportunity_history as h
    inner join quarantine_flipped as q
        on q.object = 'opportunityhistory' and q.record_id = h.id
    {%- endif %}
    {%- if owners %}

    union

    select o.id
    from salesforce.opportunity as o
    inner join quarantine_flipped as q
        on
            (q.object = 'account' and q.record_id = o.account_id)
            or (q.object = 'user' and q.record_id = o.owner_id)
    {%- endif %}

    {%- if line_items %}

    union

    -- its line items and their products (primary product family)
    select li.opportunity_id
    from salesforce.opportunity_line_item as li, watermark
    where li._dlt_load_id > watermark.load_id

    union

    select li.opportunity_id
    from salesforce.opportunity_line_item as li
    inner join salesforce.product2 as p on li.product2_id = p.id
    cross join watermark
    where p._dlt_load_id > watermark.load_id

    union

    select li.opportunity_id
    from salesforce.opportunity_line_item as li
    inner join quarantine_flipped as q
        on
            (q.object = 'opportunitylineitem' and q.record_id = li.id)
            or (q.object = 'product2' and q.record_id = li.product2_id)
    {%- endif %}

    {%- if people %}

    union

    -- people: the converted lead, contacts linked by a role (and role changes), their new touches
    select r.opportunity_id
    from salesforce.opportunity_contact_role as r, watermark
    where r._dlt_load_id > watermark.load_id

    union

    select r.opportunity_id
    from salesforce.opportunity_contact_role as r
    inner join quarantine_flipped as q
        on q.object = 'opportunitycontactrole' and q.record_id = r.id

    union

    select l.converted_opportunity_id
    from salesforce.lead as l, watermark
    where l._dlt_load_id > watermark.load_id

    union

    select r.opportunity_id
    from salesforce.opportunity_contact_role as r
    inner join salesforce.contact as c on r.contact_id = c.id
    cross join watermark
    where c._dlt_load_id > watermark.load_id

    union

    select l.converted_opportunity_id
    from salesforce.lead as l
    inner join quarantine_flipped as q on q.object = 'lead' and q.record_id = l.id

    union

    select r.opportunity_id
    from salesforce.opportunity_contact_role as r
    inner join quarantine_flipped as q on q.object = 'contact' and q.record_id = r.contact_id

    union

    -- raw leads and contacts (deleted or quarantined ones too): a superset of the people the
    -- model reads, whose own changes are caught above
    select p.opportunity_id
    from touched_people as p
    inner join new_touches as t on {{ email_hash('p.email') }} = t.email_hash
    {%- endif %}
    {%- endif %}

    union

    -- everything, when the state says rebuild
    select o.id from salesforce.opportunity as o where (select rebuild_all from rebuild)

    union

    select target.opportunity_id from {{ this }} as target where (select rebuild_all from rebuild)

)

select distinct opportunity_id, false as full_build
from changed
where opportunity_id is not null
{%- endmacro %}

{#- pre-hook: the changed ids into the scratch table, their rows out of the target. For weekly
    snapshots also every row of a week that was not complete at the last build. A full build
    writes one marker row (full_build) so that the post-hook knows. -#}
{% macro opportunity_incremental_pre_hook(
    people=false, weeks=none, history=true, owners=true, line_items=false, upstream=none
) -%}
    {%- if is_incremental() -%}
    create or replace table {{ _changes_scratch_relation() }} as
    {{ changed_opportunities_sql(
        people=people, weeks=weeks, history=history, owners=owners, line_items=line_items,
        upstream=upstream
    ) }};

    delete from {{ this }}
    where
        opportunity_id in (select opportunity_id from {{ _changes_scratch_relation() }})
        {%- if weeks %}
        or snapshot_date > (
            select max(as_of_date) from {{ incremental_state_relation() }}
            where model = {{ _model_key() }}
        )
        {%- endif %}
    {%- else -%}
    create or replace table {{ _changes_scratch_relation() }} as
    select cast(null as varchar) as opportunity_id, true as full_build
    {%- endif -%}
{%- endmacro %}

{#- post-hook: what this build saw, for the next incremental run. The new state row is
    inserted before the previous one is deleted: it names the build it replaced
    (previous_build_id, null after a full build) and, for weekly snapshots, the as-of date the
    pre-hook deleted after (previous_as_of_date). Columns are named: older warehouses got the
    new columns appended by create_incremental_state. -#}
{% macro opportunity_incremental_post_hook(people=false, weeks=none) -%}
    {%- set with_loaded_at = _touchpoints_have_loaded_at() -%}
    {%- set full_build -%}
        coalesce((select bool_or(full_build) from {{ _changes_scratch_relation() }}), false)
    {%- endset -%}
    delete from {{ incremental_state_relation() }}
    where model = {{ _model_key() }} and build_id = '{{ invocation_id }}';

    insert into {{ incremental_state_relation() }} (
        model, load_id, fingerprint, touchpoints_loaded_at, touchpoints_rows, first_week_start,
        as_of_date, built_at, changed_opportunities, build_id, previous_build_id,
        previous_as_of_date
    )
    select
        {{ _model_key() }} as model,
        {{ _latest_load_id() }} as load_id,
        {{ _incremental_fingerprint() }} as fingerprint,
        {%- if with_loaded_at %}
        (select max(loaded_at) from marketing.touchpoints) as touchpoints_loaded_at,
        (select count(*) from marketing.touchpoints) as touchpoints_rows,
        {%- else %}
        cast(null as timestamp) as touchpoints_loaded_at,
        cast(null as bigint) as touchpoints_rows,
        {%- endif %}
        {%- if weeks %}
        (select min(week_start) from {{ ref(weeks) }}) as first_week_start,
        (select max(as_of_date) from {{ ref(weeks) }}) as as_of_date,
        {%- else %}
        cast(null as date) as first_week_start,
        cast(null as date) as as_of_date,
        {%- endif %}
        current_timestamp as built_at,
        case
            when (select bool_or(full_build) from {{ _changes_scratch_relation() }}) then null
            else (select count(*) from {{ _changes_scratch_relation() }})
        end as changed_opportunities,
        '{{ invocation_id }}' as build_id,
        case when not {{ full_build }} then (
            select max(prior.build_id) from {{ incremental_state_relation() }} as prior
            where prior.model = {{ _model_key() }}
        ) end as previous_build_id,
        case when not {{ full_build }} then (
            select max(prior.as_of_date) from {{ incremental_state_relation() }} as prior
            where prior.model = {{ _model_key() }}
        ) end as previous_as_of_date;

    delete from {{ incremental_state_relation() }}
    where model = {{ _model_key() }} and build_id is distinct from '{{ invocation_id }}';

    delete from {{ incremental_quarantine_relation() }} where model = {{ _model_key() }};

    insert into {{ incremental_quarantine_relation() }}
    select distinct {{ _model_key() }}, replace(lower(object), '_', ''), record_id
    from quality.quarantine_ids;

    delete from {{ changed_ids_relation() }} where model = {{ _model_key() }};

    insert into {{ changed_ids_relation() }}
    select {{ _model_key() }}, opportunity_id
    from {{ _changes_scratch_relation() }}
    where not full_build;

    drop table if exists {{ _changes_scratch_relation() }}
{%- endmacro %}

{#- In the model body: keep the rows of changed opportunities on incremental runs. -#}
{% macro changed_opportunity_filter(column) -%}
    {%- if is_incremental() -%}
    {{ column }} in (select opportunity_id from {{ _changes_scratch_relation() }})
    {%- else -%}
    true
    {%- endif -%}
{%- endmacro %}
