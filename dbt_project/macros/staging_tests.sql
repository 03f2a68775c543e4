{#- Data tests of the staging views that check only the raw rows loaded since the last green
    run (docs/MARTS.md, "Staging tests on incremental runs").

    A data test of a staging view configured with `where: "__new_raw_rows__"` reads only the
    rows whose key is the id of a raw row with a newer dlt `_dlt_load_id` (marketing touchpoints:
    a later `loaded_at`) than the watermark recorded by the last green run that ran every data
    test, or an id quarantined at that run (it may have come back), or a null key:
      * per-row tests (not_null, probability_fraction, ...) see every row that may differ from
        the last green run (dlt writes a new load id on every inserted, updated or deleted row);
        rows that left the view cannot add failures;
      * unique counts, over the whole key column, the keys that appear among those rows: a key
        is duplicated now only if one of its rows is new (else it was duplicated at the green
        run), so the failing keys and their counts are those of a whole-table test.
    The view's definition (model file checksum) and the test itself (its unique id, which
    changes with its arguments) must be those of that run, and for views that convert currencies, the
    conversion-rate tables and their quarantined ids must be as they were at the watermark.
    Otherwise, and whenever the scoped tests of incremental models fall back
    (macros/incremental_tests.sql: no green baseline, --full-refresh, whole_table_tests), the
    test reads the whole view. Changes to a macro the views use are not detected: run with
    `--vars '{whole_table_tests: true}'`. -#}

{% macro tests_watermarks_relation() -%}
    intermediate.incremental_tests_watermarks
{%- endmacro %}

{% macro tests_models_relation() -%}
    intermediate.incremental_tests_models
{%- endmacro %}

{% macro tests_quarantine_relation() -%}
    intermediate.incremental_tests_quarantine
{%- endmacro %}

{#- staging view -> [raw table, key column of the view, quarantine object (normalised) or none,
    raw tables whose rows may change the view's old rows] -#}
{% macro _staging_raw_rows() -%}
    {%- set rates = ['salesforce.dated_conversion_rate', 'salesforce.currency_type'] -%}
    {{ return({
        'stg_salesforce__user_roles': ['salesforce.user_role', 'user_role_id', 'userrole', []],
        'stg_salesforce__users': ['salesforce."user"', 'user_id', 'user', []],
        'stg_salesforce__accounts': ['salesforce.account', 'account_id', 'account', []],
        'stg_salesforce__contacts': ['salesforce.contact', 'contact_id', 'contact', []],
        'stg_salesforce__leads': ['salesforce.lead', 'lead_id', 'lead', []],
        'stg_salesforce__campaigns': ['salesforce.campaign', 'campaign_id', 'campaign', []],
        'stg_salesforce__campaign_members': [
            'salesforce.campaign_member', 'campaign_member_id', 'campaignmember', []
        ],
        'stg_salesforce__opportunities': [
            'salesforce.opportunity', 'opportunity_id', 'opportunity', rates
        ],
        'stg_salesforce__opportunity_history': [
            'salesforce.opportunity_history', 'opportunity_history_id', 'opportunityhistory', []
        ],
        'stg_salesforce__opportunity_contact_roles': [
            'salesforce.opportunity_contact_role', 'opportunity_contact_role_id',
            'opportunitycontactrole', []
        ],
        'stg_salesforce__products': ['salesforce.product2', 'product_id', none, []],
        'stg_salesforce__opportunity_line_items': [
            'salesforce.opportunity_line_item', 'opportunity_line_item_id',
            'opportunitylineitem', []
        ],
        'stg_salesforce__tasks': ['salesforce.task', 'task_id', 'task', []],
        'stg_salesforce__events': ['salesforce.event', 'event_id', 'event', []],
        'stg_salesforce__forecasting_quotas': [
            'salesforce.forecasting_quota', 'forecasting_quota_id', 'forecastingquota', []
        ],
        'stg_salesforce__currency_types': [
            'salesforce.currency_type', 'currency_type_id', 'currencytype', []
        ],
        'stg_salesforce__dated_conversion_rates': [
            'salesforce.dated_conversion_rate', 'dated_conversion_rate_id',
            'datedconversionrate', []
        ],
        'stg_marketing__touchpoints': ['marketing.touchpoints', 'touchpoint_id', none, []],
    }) }}
{%- endmacro %}

{% macro _raw_watermark_column(table) -%}
    {{- 'loaded_at' if table.startswith('marketing.') else '_dlt_load_id' -}}
{%- endmacro %}

{#- on-run-end, after record_tests_baseline: when every data test ran and the run is green, the
    raw watermarks, view checksums and quarantined ids the next runs' scoped tests start from;
    when every test ran and the run is not green, none (the next run reads whole views). -#}
{% macro record_tests_watermarks(results) -%}
    {%- if not execute -%}{{ return('') }}{%- endif -%}
    {%- set ns = namespace(all_tests=(tests_not_run(results) | length == 0), introspected=false) -%}
    {%- set views = _staging_raw_rows() -%}
    {%- set tables = [] -%}
    {%- for spec in views.values() -%}
        {%- for table in [spec[0]] + spec[3] -%}
            {%- if table not in tables -%}{%- do tables.append(table) -%}{%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    create table if not exists {{ tests_watermarks_relation() }} (
        source varchar, load_id varchar, loaded_at timestamp
    );
    create table if not exists {{ tests_models_relation() }} (model varchar, checksum varchar);
    create table if not exists {{ tests_quarantine_relation() }} (
        object varchar, record_id varchar
    );
    create table if not exists {{ tests_failures_relation() }} (test varchar, value varchar);
    {%- if ns.all_tests %}
    delete from {{ tests_watermarks_relation() }};
    delete from {{ tests_models_relation() }};
    delete from {{ tests_quarantine_relation() }};
    delete from {{ tests_failures_relation() }};
    {#- the relationships tests that may read changed rows next time: passed, or warned with
        their failing keys kept (store_failures) -#}
    {%- set carried = [] -%}
    {%- for result in results if '__new_or_orphaned__' in (
        result.node.config.get('where') or ''
    ) -%}
        {%- if result.status == 'pass' -%}
            {%- do carried.append([result.node.unique_id, none]) -%}
        {%- elif result.status == 'warn' and result.node.config.get('store_failures') -%}
            {#- written by this run's test (dbt's store_failures; not in the relation cache) -#}
            {%- do carried.append([result.node.unique_id, api.Relation.create(
                database=target.database, schema=result.node.schema,
                identifier=result.node.alias
            )]) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- for test_id, audit in carried if audit is not none %}
    insert into {{ tests_failures_relation() }}
    select '{{ test_id }}', cast(from_field as varchar) from {{ audit }}
    where (select bool_and(green) from {{ tests_baseline_relation() }});
    {%- endfor %}
    {%- set existing = [] -%}
    {%- for table in tables -%}
        {%- set parts = table.split('.') -%}
        {%- set raw = adapter.get_relation(
            database=target.database, schema=parts[0], identifier=parts[1] | replace('"', '')
        ) -%}
        {#- a touchpoints table without loaded_at (older loader): no watermark, whole view -#}
        {%- if raw is not none -%}
            {%- set ns.introspected = true -%}
            {%- if _raw_watermark_column(table) in (
                adapter.get_columns_in_relation(raw) | map(attribute='name') | map('lower') | list
            ) -%}
                {%- do existing.append(table) -%}
            {%- endif -%}
        {%- endif -%}
    {%- endfor %}
    {%- if existing %}
    insert into {{ tests_watermarks_relation() }}
    select source, load_id, loaded_at from (
        {%- for table in existing %}
        {%- if table.startswith('marketing.') %}
        select '{{ table }}' as source, null as load_id, max(loaded_at) as loaded_at
        from {{ table }}
        {%- else %}
        select '{{ table }}' as source, max(_dlt_load_id) as load_id, null as loaded_at
        from {{ table }}
        {%- endif %}
        {%- if not loop.last %} union all{% endif %}
        {%- endfor %}
    ) as marks
    where (select bool_and(green) from {{ tests_baseline_relation() }});
    {%- endif %}
    insert into {{ tests_models_relation() }}
    select model, checksum from (values
        {%- for node in graph.nodes.values() if (node.resource_type == 'model'
            and node.name in views) or node.resource_type == 'seed' %}
        ('{{ node.name }}', '{{ node.checksum.checksum }}'),
        {%- endfor %}
        {#- the scoped tests that ran (a new test, or new arguments, has a new unique id) -#}
        {%- for result in results if '__new_raw_rows__' in (
            result.node.config.get('where') or ''
        ) %}
        ('{{ result.node.unique_id }}', 'test'),
        {%- endfor %}
        {%- for test_id, audit in carried %}
        ('{{ test_id }}', 'test'),
        {%- endfor %}
        ('', '')
    ) as m (model, checksum)
    where (select bool_and(green) from {{ tests_baseline_relation() }});
    insert into {{ tests_quarantine_relation() }}
    select distinct replace(lower(object), '_', ''), record_id
    from quality.quarantine_ids
    where (select bool_and(green) from {{ tests_baseline_relation() }})
    {%- if ns.introspected -%}
    ;
    {#- reading the columns above opened a transaction on the hook's connection, which dbt
        rolls back after the last hook -#}
    commit
    {%- endif %}
    {%- endif %}
{%- endmacro %}

{#- The ids of the rows of staging view `identifier` that may differ from the last green run
    (a subquery returning one varchar column; see the top), or '' when the whole view must be
    read by test `test_id`. -#}
{% macro staging_new_keys(identifier, test_id) -%}
    {%- set views = _staging_raw_rows() -%}
    {%- if not execute or identifier not in views or not test_id -%}{{ return('') }}{%- endif -%}
    {%- for name in [
        'incremental_tests_scope', 'incremental_tests_watermarks', 'incremental_tests_models',
        'incremental_tests_quarantine',
    ] -%}
        {%- if adapter.get_relation(
            database=target.database, schema='intermediate', identifier=name
        ) is none -%}
            {{ return('') }}
        {%- endif -%}
    {%- endfor -%}
    {%- set spec = views[identifier] -%}
    {%- set table, key, object, inputs = spec[0], spec[1], spec[2], spec[3] -%}
    {%- set ns = namespace(checksum='') -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'model'
        and node.name == identifier -%}
        {%- set ns.checksum = node.checksum.checksum -%}
    {%- endfor -%}
    {%- set mark = 'loaded_at' if table.startswith('marketing.') else 'load_id' -%}
    {%- set query -%}
        select
            coalesce((select bool_and(changed_only) from {{ tests_scope_relation() }}), false)
            and exists (
                select 1 from {{ tests_models_relation() }}
                where model = '{{ identifier }}' and checksum = '{{ ns.checksum }}'
            )
            -- this test ran (and passed) at that run: a test added since reads the whole view
            and exists (
                select 1 from {{ tests_models_relation() }}
                where model = '{{ test_id }}' and checksum = 'test'
            )
            {%- for input in inputs %}
            and (select max(_dlt_load_id) from {{ input }}) is not distinct from (
                select max(load_id) from {{ tests_watermarks_relation() }}
                where source = '{{ input }}'
            )
            {%- endfor %}
            {%- if inputs %}
            and not exists (
                (
                    select replace(lower(object), '_', ''), record_id from quality.quarantine_ids
                    where replace(lower(object), '_', '') in ('datedconversionrate', 'currencytype')
                    except
                    select object, record_id from {{ tests_quarantine_relation() }}
                    where object in ('datedconversionrate', 'currencytype')
                )
                union all
                (
                    select object, record_id from {{ tests_quarantine_relation() }}
                    where object in ('datedconversionrate', 'currencytype')
                    except
                    select replace(lower(object), '_', ''), record_id from quality.quarantine_ids
                    where replace(lower(object), '_', '') in ('datedconversionrate', 'currencytype')
                )
            )
            {%- endif %} as scoped,
            (
                select cast(max({{ mark }}) as varchar) from {{ tests_watermarks_relation() }}
                where source = '{{ table }}'
            ) as watermark
    {%- endset -%}
    {%- set row = run_query(query).rows[0] -%}
    {%- if row[0] is not true or row[1] is none -%}{{ return('') }}{%- endif -%}
    {%- if table.startswith('marketing.') -%}
        {%- set keys -%}
        select cast({{ key }} as varchar) from {{ table }}
        where loaded_at > cast('{{ row[1] }}' as timestamp)
        {%- endset -%}
    {%- else -%}
        {%- set keys -%}
        select id from {{ table }} where _dlt_load_id > '{{ row[1] }}'
        {%- if object %}
        union all
        select record_id from {{ tests_quarantine_relation() }} where object = '{{ object }}'
        {%- endif %}
        {%- endset -%}
    {%- endif -%}
    {{ return(keys) }}
{%- endmacro %}

{#- The test node being compiled (`model` in a test's context), or none. -#}
{% macro _compiled_test() -%}
    {%- if model is defined and model.unique_id is defined and model.resource_type == 'test' -%}
        {{ return(model) }}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}

{#- A predicate on the key of staging view `relation`: its rows that may differ from the last
    green run (see the top), or `true` when the whole view must be checked. -#}
{% macro new_raw_rows_predicate(relation) -%}
    {%- set views = _staging_raw_rows() -%}
    {%- set test = _compiled_test() -%}
    {%- if relation.identifier not in views or test is none -%}{{ return('true') }}{%- endif -%}
    {%- set keys = staging_new_keys(relation.identifier, test.unique_id) -%}
    {%- if not keys -%}{{ return('true') }}{%- endif -%}
    {%- set key = views[relation.identifier][1] -%}
    ({{ key }} is null or {{ key }} in ({{ keys }}))
{%- endmacro %}

{% macro tests_failures_relation() -%}
    intermediate.incremental_tests_failures
{%- endmacro %}

{#- The parent node (model or seed) of relationships test `test`, or none. -#}
{% macro _relationships_parent(test, child_identifier) -%}
    {%- for uid in test.depends_on.nodes -%}
        {%- set node = graph.nodes.get(uid) -%}
        {%- if node is not none and node.name != child_identifier -%}
            {{ return(node) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(none) }}
{%- endmacro %}

{#- A predicate on the rows of staging view `relation` a relationships test configured with
    `where: "__new_or_orphaned__"` must read (docs/MARTS.md, "Staging tests on incremental
    runs"), or `true` for the whole view:
      * the rows that may differ from the last green run (staging_new_keys of the child), and
      * the rows whose key column references a parent row that may differ (staging_new_keys of
        the parent view: new, changed, deleted or released rows) or that is quarantined now, and
      * the rows whose key column failed at that run (the test's failing keys, kept from its
        `store_failures` table by record_tests_watermarks): a warning is carried, not lost.
    A child row outside all three is the row it was at that run, referencing the parent row it
    was, and failed then exactly when it fails now. A seed parent must have the checksum of
    that run; another parent reads the whole view. -#}
{% macro orphan_rows_predicate(relation) -%}
    {%- set views = _staging_raw_rows() -%}
    {%- set test = _compiled_test() -%}
    {%- if test is none or relation.identifier not in views or not test.column_name -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set parent = _relationships_parent(test, relation.identifier) -%}
    {%- if parent is none or (parent.resource_type == 'model' and parent.name not in views)
        or parent.resource_type not in ('model', 'seed') -%}
        {{ return('true') }}
    {%- endif -%}
    {%- if adapter.get_relation(
        database=target.database, schema='intermediate', identifier='incremental_tests_failures'
    ) is none -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set child_keys = staging_new_keys(relation.identifier, test.unique_id) -%}
    {%- if not child_keys -%}{{ return('true') }}{%- endif -%}
    {%- set parents = [] -%}
    {%- if parent.resource_type == 'model' -%}
        {%- set parent_keys = staging_new_keys(parent.name, test.unique_id) -%}
        {%- if not parent_keys -%}{{ return('true') }}{%- endif -%}
        {%- do parents.append(parent_keys) -%}
        {%- set object = views[parent.name][2] -%}
        {%- if object -%}
            {%- set quarantined -%}
        select record_id from quality.quarantine_ids
        where replace(lower(object), '_', '') = '{{ object }}'
            {%- endset -%}
            {%- do parents.append(quarantined) -%}
        {%- endif -%}
    {%- else -%}
        {%- set seed_query -%}
            select exists (
                select 1 from {{ tests_models_relation() }}
                where model = '{{ parent.name }}' and checksum = '{{ parent.checksum.checksum }}'
            )
        {%- endset -%}
        {%- if run_query(seed_query).rows[0][0] is not true -%}{{ return('true') }}{%- endif -%}
    {%- endif -%}
    {%- set failed -%}
        select value from {{ tests_failures_relation() }} where test = '{{ test.unique_id }}'
    {%- endset -%}
    {%- do parents.append(failed) -%}
    {%- set key = views[relation.identifier][1] -%}
    ({{ key }} is null or {{ key }} in ({{ child_keys }})
        or {{ test.column_name }} in ({{ parents | join(' union all ') }}))
{%- endmacro %}
