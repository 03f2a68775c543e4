-- One row per opportunity and stage it ever entered: when it first entered the stage and, for
-- open stages, when it first moved on to a later stage (Closed Lost is never "later").

with

states as (

    select * from {{ ref('int_opportunity_states_sequenced') }}

),

entries as (

    select
        opportunity_id,
        stage_name,
        min(stage_order) as stage_order,
        min(valid_from) as first_entered_at,
        count(*) as times_entered

    from states
    group by opportunity_id, stage_name

),

advanced as (

    select
        entries.opportunity_id,
        entries.stage_name,
        min(later.valid_from) as first_advanced_at

    from entries
    inner join states as later
        on
            entries.opportunity_id = later.opportunity_id
            and later.stage_order > entries.stage_order
            and later.stage_name != 'Closed Lost'
            and later.valid_from >= entries.first_entered_at
    group by entries.opportunity_id, entries.stage_name

)

select
    entries.opportunity_id,
    entries.stage_name,
    entries.stage_order,
    entries.first_entered_at,
    entries.times_entered,
    advanced.first_advanced_at

from entries
left join advanced
    on
        entries.opportunity_id = advanced.opportunity_id
        and entries.stage_name = advanced.stage_name
