-- Every opportunity's touch credits sum to 1 under each of the six rule-based models, credits are
-- never negative, and every touch has a row per model. Returns the offending rows.
-- Per opportunity: after a green run only the opportunities either model recomputed in its last
-- build are checked (macros/incremental_tests.sql), the whole tables otherwise.

{% set scope = changed_opportunities_predicate(
    [ref('attribution_touchpoints'), ref('int_opportunity_journeys')]
) %}

with

credits as (

    select * from {{ ref('attribution_touchpoints') }}
    where {{ scope }}

),

journeys as (

    select
        opportunity_id,
        count(*) as touches

    from {{ ref('int_opportunity_journeys') }}
    where {{ scope }}
    group by opportunity_id

),

sums as (

    select
        opportunity_id,
        attribution_model,
        sum(credit) as total_credit,
        count(*) as touches,
        min(credit) as min_credit

    from credits
    group by opportunity_id, attribution_model

)

select
    sums.opportunity_id,
    sums.attribution_model,
    sums.total_credit,
    sums.touches,
    journeys.touches as journey_touches

from sums
inner join journeys
    on sums.opportunity_id = journeys.opportunity_id
where
    abs(sums.total_credit - 1) > 1e-9
    or sums.min_credit < 0
    or sums.touches != journeys.touches

union all

select
    journeys.opportunity_id,
    '(missing models)' as attribution_model,
    null as total_credit,
    count(distinct sums.attribution_model) as touches,
    max(journeys.touches) as journey_touches

from journeys
left join sums
    on journeys.opportunity_id = sums.opportunity_id
group by journeys.opportunity_id
having count(distinct sums.attribution_model) != 6
