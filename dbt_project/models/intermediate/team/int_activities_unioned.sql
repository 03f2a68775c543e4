-- Sales activities logged by reps: completed tasks (calls, emails, other tasks) and events
-- (meetings, demos, onsite visits), one row each with the day it happened.
-- A view: its one reader (rep_activity) aggregates it at once, and writing its ~10M rows (at
-- large) as a table cost more than that aggregate on every run.
-- Each source is read in two parts, with and without an activity date: the staging views convert
-- created_date (and start_date_time) to UTC for every row they return, and the fallback dates
-- are needed only for rows without an activity date (nearly none); the conversions of the
-- others were most of this view's cost (coalesce(a, b) is a where a is not null, else b).

{{ config(materialized='view') }}

-- Each part reads its staging view itself: DuckDB materializes a CTE read twice (every
-- column of every row, conversions included).
{%- set task_type %}
    case
        when task_subtype = 'Call' then 'call'
        when task_subtype = 'Email' then 'email'
        else 'task'
    end
{%- endset %}

with

dated_tasks as (

    select
        task_id as activity_id,
        owner_id,
        activity_date,
        {{ task_type }} as activity_type

    from {{ ref('stg_salesforce__tasks') }}
    -- open to-dos are plans, not logged activity
    where coalesce(status, 'Completed') = 'Completed' and activity_date is not null

),

undated_tasks as (

    select
        task_id as activity_id,
        owner_id,
        cast(created_date as date) as activity_date,
        {{ task_type }} as activity_type

    from {{ ref('stg_salesforce__tasks') }}
    where coalesce(status, 'Completed') = 'Completed' and activity_date is null

),

dated_events as (

    select
        event_id as activity_id,
        owner_id,
        activity_date,
        'meeting' as activity_type

    from {{ ref('stg_salesforce__events') }}
    where activity_date is not null

),

undated_events as (

    select
        event_id as activity_id,
        owner_id,
        coalesce(cast(start_date_time as date), cast(created_date as date)) as activity_date,
        'meeting' as activity_type

    from {{ ref('stg_salesforce__events') }}
    where activity_date is null

)

select * from dated_tasks
union all
select * from undated_tasks
union all
select * from dated_events
union all
select * from undated_events
