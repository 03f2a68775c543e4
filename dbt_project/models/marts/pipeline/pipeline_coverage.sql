-- Pipeline coverage against quota per quarter and quota owner (ForecastingQuota, in USD):
-- open pipeline closing in the quarter as it stood at the quarter's start, divided by quota;
-- and today's open pipeline closing in the quarter against the quota still to be won.

with

quotas as (

    select * from {{ ref('stg_salesforce__forecasting_quotas') }}

),

history as (

    select * from {{ ref('opportunity_history') }}

),

opportunities as (

    select * from {{ ref('opportunities') }}

),

users as (

    select * from {{ ref('stg_salesforce__users') }}

),

quota_quarters as (

    select
        cast({{ dbt.date_trunc('quarter', 'start_date') }} as date) as quarter_start,
        quota_owner_id as owner_id,
        sum(quota_amount_usd) as quota_usd

    from quotas
    group by {{ dbt.date_trunc('quarter', 'start_date') }}, quota_owner_id

),

pipeline_at_start as (

    select
        quota_quarters.quarter_start,
        quota_quarters.owner_id,
        sum(history.amount_usd) as pipeline_at_start_usd,
        sum(history.amount_usd * history.probability) as weighted_pipeline_at_start_usd,
        count(*) as open_opps_at_start

    from quota_quarters
    inner join history
        on
            history.owner_id = quota_quarters.owner_id
            -- the quarter the deal closes in (implied by the close-date range below): a hash key,
            -- so every state meets one quota row instead of all the owner's quarters (~25M
            -- pairs filtered by range at large)
            and cast({{ dbt.date_trunc('quarter', 'history.close_date') }} as date)
            = quota_quarters.quarter_start
            and history.valid_from <= cast(quota_quarters.quarter_start as timestamp)
            and (
                history.valid_to is null
                or history.valid_to > cast(quota_quarters.quarter_start as timestamp)
            )
            and not history.is_closed
            and history.close_date >= quota_quarters.quarter_start
            and history.close_date < {{ dbt.dateadd('month', 3, 'quota_quarters.quarter_start') }}
    group by quota_quarters.quarter_start, quota_quarters.owner_id

),

current_quarter_deals as (

    select
        cast({{ dbt.date_trunc('quarter', 'close_date') }} as date) as quarter_start,
        owner_id,
        coalesce(sum(case when is_won then amount_usd end), 0) as won_usd,
        coalesce(sum(case when status = 'open' then amount_usd end), 0) as open_pipeline_usd,
        coalesce(sum(case when status = 'open' then weighted_amount_usd end), 0)
            as weighted_open_pipeline_usd

    from opportunities
    group by {{ dbt.date_trunc('quarter', 'close_date') }}, owner_id

)

select
    quota_quarters.quarter_start,
    quota_quarters.owner_id,
    users.name as owner_name,
    users.manager_id,
    users.segment,
    users.region,
    quota_quarters.quota_usd,
    coalesce(current_quarter_deals.won_usd, 0) as won_usd,
    coalesce(pipeline_at_start.open_opps_at_start, 0) as open_opps_at_start,
    coalesce(pipeline_at_start.pipeline_at_start_usd, 0) as pipeline_at_start_usd,
    coalesce(pipeline_at_start.weighted_pipeline_at_start_usd, 0)
        as weighted_pipeline_at_start_usd,
    coalesce(pipeline_at_start.pipeline_at_start_usd, 0)
    / nullif(quota_quarters.quota_usd, 0) as coverage_at_start,
    coalesce(current_quarter_deals.open_pipeline_usd, 0) as open_pipeline_usd,
    coalesce(current_quarter_deals.weighted_open_pipeline_usd, 0) as weighted_open_pipeline_usd,
    greatest(quota_quarters.quota_usd - coalesce(current_quarter_deals.won_usd, 0), 0)
        as remaining_quota_usd,
    coalesce(current_quarter_deals.open_pipeline_usd, 0)
    / nullif(
        greatest(quota_quarters.quota_usd - coalesce(current_quarter_deals.won_usd, 0), 0), 0
    ) as coverage_of_remaining,
    coalesce(current_quarter_deals.won_usd, 0)
    / nullif(quota_quarters.quota_usd, 0) as attainment

from quota_quarters
left join users
    on quota_quarters.owner_id = users.user_id
left join pipeline_at_start
    on
        quota_quarters.quarter_start = pipeline_at_start.quarter_start
        and quota_quarters.owner_id = pipeline_at_start.owner_id
left join current_quarter_deals
    on
        quota_quarters.quarter_start = current_quarter_deals.quarter_start
        and quota_quarters.owner_id = current_quarter_deals.owner_id
