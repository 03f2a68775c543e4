-- Sales velocity per month and owning rep (same definitions as sales_velocity).

with

inputs as (

    select * from {{ ref('int_velocity_inputs_aggregated') }}

),

{{ velocity_metrics('inputs', 'owner_id') }}
