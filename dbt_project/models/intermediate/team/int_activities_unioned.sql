-- Sales activities logged by reps: completed tasks (calls, emails, other tasks) and events
-- (meetings, demos, onsite visits), one row each with the day it happened.
-- A view: its one reader (rep_activity) aggregates it at once, and writing its ~10M rows (at
-- large) as a table cost more than that aggregate on every run.

{{ config(materialized='view') }}

with

tasks as (

    select * from {{ ref('stg_salesforce__tasks') }}

),

events as (

    select * from {{ ref('stg_salesforce__events') }}

)

select
    task_id as activity_id,
    owner_id,
    coalesce(activity_date, cast(created_date as date)) as activity_date,
    case
        when task_subtype = 'Call' then 'call'
        when task_subtype = 'Email' then 'email'
        else 'task'
    end as activity_type

from tasks
-- open to-dos are plans, not logged activity
where coalesce(status, 'Completed') = 'Completed'

union all

select
    event_id as activity_id,
    owner_id,
    coalesce(activity_date, cast(start_date_time as date), cast(created_date as date))
        as activity_date,
    'meeting' as activity_type

from events
