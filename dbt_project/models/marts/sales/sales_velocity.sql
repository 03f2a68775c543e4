-- Sales velocity per month and segment:
-- open qualified opps (at month start) x win rate (by count) x avg won deal / avg cycle days.

with

inputs as (

    select * from {{ ref('int_velocity_inputs_aggregated') }}

),

{{ velocity_metrics('inputs', 'segment') }}
