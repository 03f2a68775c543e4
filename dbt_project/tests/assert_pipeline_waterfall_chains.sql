{{ config(meta={"dagster": {"ref": {"name": "pipeline_waterfall"}}}) }}

-- Week over week the waterfall chains: a week's start equals the previous week's end for the
-- same close quarter and segment (both come from the same weekly snapshots).
with

waterfall as (

    select * from {{ ref('pipeline_waterfall') }}

),

snapshots as (

    select
        snapshot_date,
        close_quarter,
        segment,
        cast(sum(cast(coalesce(amount_usd, 0) as decimal(18, 2))) as decimal(38, 2)) as total_usd

    from {{ ref('pipeline_snapshots') }}
    group by snapshot_date, close_quarter, segment

)

select
    waterfall.week_start,
    waterfall.close_quarter,
    waterfall.segment,
    waterfall.end_usd,
    snapshots.total_usd

from waterfall
left join snapshots
    on
        waterfall.week_end = snapshots.snapshot_date
        and waterfall.close_quarter = snapshots.close_quarter
        and waterfall.segment = snapshots.segment
where waterfall.end_usd != coalesce(snapshots.total_usd, 0)
