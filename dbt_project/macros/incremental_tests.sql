{#- Data tests of the opportunity-keyed incremental models that check only what changed
    (docs/MARTS.md, "Tests on incremental runs").

    A data test configured with `where: "__changed_opportunities__"` (or a singular test using
    `changed_opportunities_predicate`) checks only the rows of the opportunities its model(s)
    recomputed in their last build (intermediate.incremental_changed, written by the post-hook
    of macros/incremental_by_opportunity.sql) when that is provably the same as checking the
    whole table:
      * the test's result for an opportunity depends on that opportunity's rows only (a key
        that includes opportunity_id, a per-row check, a per-opportunity sum), and
      * every other row is as it was at the end of the last dbt run, and that run was "green":
        no node failed (a warning counts as a failure for the scoped tests only), and every test
        of every model it built ran; a run that tested a subset also needs the run before it to
        be green.
    Otherwise (no green baseline, the last build of a model was a full build, the recorded ids
    do not match the count in intermediate.incremental_state, `--full-refresh`, or
    `--vars '{whole_table_tests: true}'`) the test reads the whole table, as in a first build.

    on-run-start `start_tests_scope()` moves the green flag of the last run into
    intermediate.incremental_tests_scope and clears it, so a run that dies half-way leaves no
    green baseline; on-run-end `record_tests_baseline(results)` records whether this run is
    green. -#}

{% macro tests_baseline_relation() -%}
    intermediate.incremental_tests_baseline
{%- endmacro %}

{% macro tests_scope_relation() -%}
    intermediate.incremental_tests_scope
{%- endmacro %}

{% macro changed_ids_relation() -%}
    intermediate.incremental_changed
{%- endmacro %}

{#- on-run-start (after create_incremental_state): this run's scope from the last run's flag. -#}
{% macro start_tests_scope() -%}
    create table if not exists {{ tests_baseline_relation() }} (
        green boolean,
        recorded_at timestamp
    );
    create or replace table {{ tests_scope_relation() }} as
    select
        coalesce((select bool_and(green) from {{ tests_baseline_relation() }}), false)
        as previous_green,
        coalesce((select bool_and(green) from {{ tests_baseline_relation() }}), false)
        and not {{ 'true' if flags.FULL_REFRESH else 'false' }}
        and not {{ 'true' if var('whole_table_tests', false) else 'false' }}
        as changed_only;
    delete from {{ tests_baseline_relation() }}
{%- endmacro %}

{#- The data tests of the project that did not run in this invocation (`results`). -#}
{% macro tests_not_run(results) -%}
    {%- set ran = [] -%}
    {%- for result in results -%}{%- do ran.append(result.node.unique_id) -%}{%- endfor -%}
    {%- set missing = [] -%}
    {%- for node in graph.nodes.values() -%}
        {%- if node.resource_type == 'test' and node.unique_id not in ran -%}
            {%- do missing.append(node) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(missing) }}
{%- endmacro %}

{#- on-run-end: green when nothing failed, every test of every model built in this run ran,
    and either every data test of the project ran or the run before was green. -#}
{% macro record_tests_baseline(results) -%}
    {%- if not execute -%}{{ return('') }}{%- endif -%}
    {%- set built = [] -%}
    {%- set missing = tests_not_run(results) -%}
    {%- set ns = namespace(failed=false, covered=true, all_tests=(missing | length == 0)) -%}
    {%- for result in results -%}
        {%- set scoped = '__changed_opportunities__' in (result.node.config.get('where') or '')
            or '__new_raw_rows__' in (result.node.config.get('where') or '')
            or '__new_or_orphaned__' in (result.node.config.get('where') or '')
            or 'changed_opportunities_predicate' in (result.node.raw_code or '') -%}
        {#- a warning (a test configured to warn, e.g. orphan keys in staging) does not stop
            the baseline, unless the test is one of the scoped ones; the scoped relationships
            tests of staging carry their failing keys to the next run (staging_tests.sql) -#}
        {%- if result.status not in ('success', 'pass', 'warn')
            or (result.status == 'warn' and scoped
                and '__new_or_orphaned__' not in (result.node.config.get('where') or '')) -%}
            {%- set ns.failed = true -%}
        {%- endif -%}
        {%- if result.node.resource_type == 'model' -%}
            {%- do built.append(result.node.unique_id) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- for node in missing -%}
        {%- for parent in node.depends_on.nodes -%}
            {%- if parent in built -%}{%- set ns.covered = false -%}{%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    insert into {{ tests_baseline_relation() }}
    select
        not {{ ns.failed }}
        and {{ ns.covered }}
        and (
            {{ ns.all_tests }}
            or coalesce((select bool_and(previous_green) from {{ tests_scope_relation() }}), false)
        ),
        current_timestamp
{%- endmacro %}

{#- True when the tests of `model_keys` ('schema.identifier') may check changed rows only. -#}
{% macro _changed_only(model_keys) -%}
    {%- if not execute -%}{{ return(false) }}{%- endif -%}
    {%- for identifier in ['incremental_tests_scope', 'incremental_changed', 'incremental_state'] -%}
        {%- if adapter.get_relation(
            database=target.database, schema='intermediate', identifier=identifier
        ) is none -%}
            {{ return(false) }}
        {%- endif -%}
    {%- endfor -%}
    {%- set keys = "'" ~ (model_keys | join("', '")) ~ "'" -%}
    {%- set query -%}
        select
            coalesce((select bool_and(changed_only) from {{ tests_scope_relation() }}), false)
            and (
                select count(*) from {{ incremental_state_relation() }} as s
                where
                    s.model in ({{ keys }})
                    and s.changed_opportunities is not null
                    and s.changed_opportunities = (
                        select count(*) from {{ changed_ids_relation() }} as c
                        where c.model = s.model
                    )
            ) = {{ model_keys | length }}
    {%- endset -%}
    {%- set result = run_query(query) -%}
    {{ return(result.columns[0].values()[0] is true) }}
{%- endmacro %}

{#- A predicate on `column`: the opportunities recomputed by the last build of any of
    `relations` (models), or `true` when the whole table must be checked. -#}
{% macro changed_opportunities_predicate(relations, column='opportunity_id') -%}
    {%- set keys = [] -%}
    {%- for relation in relations -%}
        {%- do keys.append(relation.schema ~ '.' ~ relation.identifier) -%}
    {%- endfor -%}
    {%- if _changed_only(keys) -%}
    {{ column }} in (
        select opportunity_id from {{ changed_ids_relation() }}
        where model in ('{{ keys | join("', '") }}')
    )
    {%- else -%}
    true
    {%- endif -%}
{%- endmacro %}

{#- dbt's filter of a generic test's model, plus the `__changed_opportunities__` scope, and the
    `__new_raw_rows__` and `__new_or_orphaned__` scopes of staging views
    (macros/staging_tests.sql). A relationships test scoped by `__changed_opportunities__`
    reads the opportunities either its model or its parent model recomputed. -#}
{% macro get_where_subquery(relation) -%}
    {%- set scope = namespace(where=config.get('where', '')) -%}
    {%- for token in ['__changed_opportunities__', '__new_raw_rows__', '__new_or_orphaned__'] -%}
        {%- if scope.where and token in scope.where -%}
            {%- if token == '__new_raw_rows__' -%}
                {%- set predicate = new_raw_rows_predicate(relation) -%}
            {%- elif token == '__new_or_orphaned__' -%}
                {%- set predicate = orphan_rows_predicate(relation) -%}
            {%- else -%}
                {%- set predicate = changed_opportunities_predicate(
                    _with_relationships_parent(relation)
                ) -%}
            {%- endif -%}
            {%- set scope.where = scope.where | replace(token, '(' ~ predicate ~ ')') -%}
            {%- if predicate | trim == 'true' and scope.where | trim == '(true)' -%}
                {{ return(relation) }}
            {%- endif -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set where = scope.where -%}
    {%- if where -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {{ return(filtered) }}
    {%- else -%}
        {{ return(relation) }}
    {%- endif -%}
{%- endmacro %}

{#- [relation], plus the parent model when the test being compiled is a relationships test
    (an opportunity can lose its children's parent only by being recomputed by the parent's
    build: deleted, quarantined or changed). -#}
{% macro _with_relationships_parent(relation) -%}
    {%- set test = _compiled_test() -%}
    {%- if test is none or ((test.get('test_metadata') or {}).get('name')) != 'relationships' -%}
        {{ return([relation]) }}
    {%- endif -%}
    {%- set parent = _relationships_parent(test, relation.identifier) -%}
    {%- if parent is none or parent.resource_type != 'model' -%}
        {#- an unknown parent: a key no recorded build covers makes the scope whole -#}
        {{ return([relation, api.Relation.create(schema='unknown', identifier='unknown')]) }}
    {%- endif -%}
    {{ return([relation, api.Relation.create(
        database=target.database, schema=parent.schema, identifier=parent.alias
    )]) }}
{%- endmacro %}
