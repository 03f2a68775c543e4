-- CRM adoption per week: share of employed reps who logged at least one activity, against the
-- target (var activity_adoption_target, 95 %).

with

rep_activity as (

    select * from {{ ref('rep_activity') }}

)

select
    week_start,
    week_end,
    min(case when is_complete then 1 else 0 end) = 1 as is_complete,
    count(*) as active_reps,
    count(case when logged_activity then 1 end) as reps_logging,
    count(case when logged_activity then 1 end) * 1.0 / count(*) as adoption_rate,
    cast({{ var('activity_adoption_target') }} as double) as adoption_target,
    count(case when logged_activity then 1 end) * 1.0 / count(*)
    >= {{ var('activity_adoption_target') }} as meets_target,
    cast(sum(calls) as bigint) as calls,
    cast(sum(emails) as bigint) as emails,
    cast(sum(other_tasks) as bigint) as other_tasks,
    cast(sum(meetings) as bigint) as meetings

from rep_activity
group by week_start, week_end
