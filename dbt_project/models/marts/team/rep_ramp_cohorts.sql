-- Share of reps productive within 90 days of hire, per hire quarter and segment, against the
-- target (var ramp_productive_target, 90 %). Only reps hired at least 90 days ago count.

with

rep_ramp as (

    select * from {{ ref('rep_ramp') }}

)

select
    hire_quarter,
    segment,
    count(*) as hired_reps,
    count(case when is_evaluable then 1 end) as evaluable_reps,
    count(case when productive_within_target then 1 end) as productive_within_target_reps,
    count(case when productive_within_target then 1 end) * 1.0
    / nullif(count(case when is_evaluable then 1 end), 0) as productive_share,
    cast({{ var('ramp_productive_target') }} as double) as productive_target,
    count(case when productive_within_target then 1 end) * 1.0
    / nullif(count(case when is_evaluable then 1 end), 0)
    >= {{ var('ramp_productive_target') }} as meets_target,
    percentile_cont(0.5) within group (order by days_to_first_win) as median_days_to_first_win,
    percentile_cont(0.5) within group (order by days_to_productive) as median_days_to_productive

from rep_ramp
group by hire_quarter, segment
