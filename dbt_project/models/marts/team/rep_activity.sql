-- Calls, emails, other tasks and meetings per rep per week, for every week the rep was employed
-- (weeks without activity have zeros, so adoption can be measured).

with

weeks as (

    select * from {{ ref('int_calendar_weeks_generated') }}

),

reps as (

    select * from {{ ref('int_reps_enriched') }}

),

activities as (

    select * from {{ ref('int_activities_unioned') }}

),

rep_weeks as (

    select
        weeks.week_start,
        weeks.week_end,
        weeks.is_complete,
        reps.user_id,
        reps.rep_name,
        reps.manager_id,
        reps.segment,
        reps.region

    from weeks
    inner join reps
        on
            reps.hire_date <= weeks.week_end
            and (reps.termination_date is null or reps.termination_date >= weeks.week_start)

),

weekly as (

    select
        cast({{ dbt.date_trunc('week', 'activity_date') }} as date) as week_start,
        owner_id,
        count(case when activity_type = 'call' then 1 end) as calls,
        count(case when activity_type = 'email' then 1 end) as emails,
        count(case when activity_type = 'task' then 1 end) as other_tasks,
        count(case when activity_type = 'meeting' then 1 end) as meetings

    from activities
    group by {{ dbt.date_trunc('week', 'activity_date') }}, owner_id

)

select
    rep_weeks.week_start,
    rep_weeks.week_end,
    rep_weeks.is_complete,
    rep_weeks.user_id as owner_id,
    rep_weeks.rep_name as owner_name,
    rep_weeks.manager_id,
    rep_weeks.segment,
    rep_weeks.region,
    coalesce(weekly.calls, 0) as calls,
    coalesce(weekly.emails, 0) as emails,
    coalesce(weekly.other_tasks, 0) as other_tasks,
    coalesce(weekly.meetings, 0) as meetings,
    coalesce(weekly.calls + weekly.emails + weekly.other_tasks + weekly.meetings, 0)
        as total_activities,
    coalesce(weekly.calls + weekly.emails + weekly.other_tasks + weekly.meetings, 0) > 0
        as logged_activity

from rep_weeks
left join weekly
    on
        rep_weeks.week_start = weekly.week_start
        and rep_weeks.user_id = weekly.owner_id
