-- Sales-process compliance per opportunity (rules in int_opportunity_process_checked and
-- docs/DECISIONLOG.md): compliant = no skipped required stage, never moved backwards, no
-- required field missing at the stage reached.

with

checks as (

    select * from {{ ref('int_opportunity_process_checked') }}

),

opportunities as (

    select * from {{ ref('opportunities') }}

),

users as (

    select * from {{ ref('stg_salesforce__users') }}

)

select
    opportunities.opportunity_id,
    opportunities.owner_id,
    opportunities.owner_name,
    opportunities.manager_id as team_id,
    managers.name as team_name,
    opportunities.segment,
    opportunities.status,
    opportunities.stage_name,
    opportunities.created_date,
    opportunities.close_date,
    case
        when opportunities.is_closed
            then cast({{ dbt.date_trunc('month', 'opportunities.close_date') }} as date)
    end as close_month,
    checks.skipped_stages_count,
    checks.skipped_stages,
    checks.skipped_stages_count > 0 as skipped_required_stage,
    checks.backward_moves,
    checks.backward_moves > 0 as moved_backwards,
    checks.missing_fields,
    checks.missing_amount or checks.missing_products or checks.missing_loss_reason
        as missing_required_fields,
    checks.skipped_stages_count = 0
    and checks.backward_moves = 0
    and not (checks.missing_amount or checks.missing_products or checks.missing_loss_reason)
        as is_compliant

from opportunities
inner join checks
    on opportunities.opportunity_id = checks.opportunity_id
left join users as managers
    on opportunities.manager_id = managers.user_id
