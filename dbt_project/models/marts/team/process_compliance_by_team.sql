-- Share of closed opportunities that followed the sales process, per team (owner's manager) and
-- close month, against the target (var process_compliance_target, 95 %).

with

compliance as (

    select * from {{ ref('process_compliance') }}
    where close_month is not null

)

select
    close_month,
    team_id,
    max(team_name) as team_name,
    count(*) as closed_opportunities,
    count(case when is_compliant then 1 end) as compliant_opportunities,
    count(case when skipped_required_stage then 1 end) as skipped_stage_opportunities,
    count(case when moved_backwards then 1 end) as moved_backwards_opportunities,
    count(case when missing_required_fields then 1 end) as missing_fields_opportunities,
    count(case when is_compliant then 1 end) * 1.0 / count(*) as compliance_rate,
    cast({{ var('process_compliance_target') }} as double) as compliance_target,
    count(case when is_compliant then 1 end) * 1.0 / count(*)
    >= {{ var('process_compliance_target') }} as meets_target

from compliance
group by close_month, team_id
