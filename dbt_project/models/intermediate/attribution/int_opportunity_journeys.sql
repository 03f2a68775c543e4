-- One row per marketing touch in an opportunity's journey, in touch order.
-- People of an opportunity: the lead converted into it (its touches until the conversion day) and
-- the contacts linked through OpportunityContactRole; touches match people on email_hash.
-- Window: from `attribution_lookback_days` before the opportunity's creation to its close date.
-- Markers (exactly one touch each per journey; docs/ATTRIBUTION.md):
--   first touch; lead-creation touch = last touch at or before the person was created (the
--   converted lead, else the earliest linked contact), else the first touch; opportunity-creation
--   touch = last touch at or before the opportunity was created, else the first touch; closing
--   touch = last touch of a closed opportunity.
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook="{{ opportunity_incremental_pre_hook(people=true, history=false, owners=false) }}",
        post_hook="{{ opportunity_incremental_post_hook(people=true) }}",
    )
}}

{% set lookback_days = var('attribution_lookback_days', 365) %}
{% set touch_source = 'marked' if is_incremental() else 'touch_details' %}

with

opportunities as (

    -- only the columns used below: this CTE is read three times, so DuckDB materializes it, and
    -- the whole mart (1M wide rows at large) made the model run out of its 2 GB memory limit
    select
        opportunity_id,
        created_at,
        created_date,
        close_date,
        status,
        is_closed,
        is_won,
        amount_usd
    from {{ ref('opportunities') }}
    where {{ changed_opportunity_filter('opportunity_id') }}

),

leads as (

    select * from {{ ref('stg_salesforce__leads') }}

),

contact_roles as (

    select * from {{ ref('stg_salesforce__opportunity_contact_roles') }}
    where {{ changed_opportunity_filter('opportunity_id') }}

),

contacts as (

    -- incremental: only the contacts of the changed deals (their email hash is computed)
    select * from {{ ref('stg_salesforce__contacts') }}
    {%- if is_incremental() %}
    where contact_id in (select contact_roles.contact_id from contact_roles)
    {%- endif %}

),

touchpoints as (

    -- read once, for the match. A full build reads the touch's other columns again in `final`
    -- (a CTE read twice is materialized by DuckDB, and this one held all 17M touches at
    -- large); an incremental build matches few touches and carries them along instead of
    -- reading every touch twice
    select
        {% if is_incremental() -%}
        channel,
        campaign,
        touch_type,
        {% endif -%}
        touchpoint_id,
        email_hash,
        occurred_at
    from {{ ref('stg_marketing__touchpoints') }}

),

touch_details as (

    select
        touchpoint_id,
        email_hash,
        channel,
        campaign,
        touch_type
    from {{ ref('stg_marketing__touchpoints') }}

),

people as (

    select
        leads.converted_opportunity_id as opportunity_id,
        -- hashed here, after the filters (the same macro as staging): DuckDB computes a view's
        -- column before a semi-join, i.e. for every lead and contact
        {{ email_hash('leads.email') }} as email_hash,
        'lead' as person_type,
        leads.created_date as person_created_at,
        {{ dbt.dateadd('day', 1, 'cast(leads.converted_date as timestamp)') }} as touches_before

    from leads
    where
        leads.converted_opportunity_id is not null
        and {{ has_email_hash('leads.email') }}
        and {{ changed_opportunity_filter('leads.converted_opportunity_id') }}

    union all

    select
        contact_roles.opportunity_id,
        {{ email_hash('contacts.email') }} as email_hash,
        'contact' as person_type,
        contacts.created_date as person_created_at,
        cast(null as timestamp) as touches_before

    from contact_roles
    inner join contacts
        on contact_roles.contact_id = contacts.contact_id
    where
        {{ has_email_hash('contacts.email') }}
        and {{ changed_opportunity_filter('contact_roles.opportunity_id') }}

),

person_created as (

    -- the converted lead's creation when there is one, else the earliest linked contact's
    select
        opportunity_id,
        coalesce(
            min(case when person_type = 'lead' then person_created_at end),
            min(person_created_at)
        ) as person_created_at

    from people
    group by opportunity_id

),

matched as (

    -- ids only: a touch reached through both the lead and a contact counts once. The touch's
    -- own columns are joined back at the end (touchpoint_id is unique in staging): carrying them
    -- through this aggregate and the windows ran out of the 2 GB memory limit at large.
    select
        -- incremental: the touch's own columns too (one touch per id, unique in staging)
        {% if is_incremental() -%}
        max(touchpoints.email_hash) as email_hash,
        max(touchpoints.channel) as channel,
        max(touchpoints.campaign) as campaign,
        max(touchpoints.touch_type) as touch_type,
        {% endif -%}
        opportunities.opportunity_id,
        touchpoints.touchpoint_id,
        max(touchpoints.occurred_at) as occurred_at,
        max(people.person_type) as person_type

    from opportunities
    inner join people
        on opportunities.opportunity_id = people.opportunity_id
    inner join touchpoints
        on people.email_hash = touchpoints.email_hash
    where
        touchpoints.occurred_at
        >= {{ dbt.dateadd('day', -lookback_days, 'opportunities.created_at') }}
        and touchpoints.occurred_at
        < {{ dbt.dateadd('day', 1, 'cast(opportunities.close_date as timestamp)') }}
        and (people.touches_before is null or touchpoints.occurred_at < people.touches_before)
    group by opportunities.opportunity_id, touchpoints.touchpoint_id

),

marked as (

    -- every window in one stage (two chained window stages held all touches twice and ran out
    -- of memory at large). Positions follow (occurred_at, touchpoint_id), so the last position at
    -- or before a time is the number of touches at or before it (null when there is none).
    select
        matched.*,
        opportunities.created_at as opportunity_created_at,
        person_created.person_created_at,
        row_number() over (
            partition by matched.opportunity_id
            order by matched.occurred_at, matched.touchpoint_id
        ) as touch_position,
        count(*) over (partition by matched.opportunity_id) as touch_count,
        nullif(
            count(
                case when matched.occurred_at <= person_created.person_created_at then 1 end
            ) over (partition by matched.opportunity_id),
            0
        ) as lead_creation_position,
        nullif(
            count(
                case when matched.occurred_at <= opportunities.created_at then 1 end
            ) over (partition by matched.opportunity_id),
            0
        ) as opp_creation_position,
        max(matched.occurred_at) over (
            partition by matched.opportunity_id
        ) as last_touch_at

    from matched
    inner join opportunities
        on matched.opportunity_id = opportunities.opportunity_id
    left join person_created
        on matched.opportunity_id = person_created.opportunity_id

),

final as (

    select
        -- ids
        marked.opportunity_id,
        marked.touchpoint_id,
        {{ touch_source }}.email_hash,

        -- order
        cast(marked.touch_position as integer) as touch_position,
        cast(marked.touch_count as integer) as touch_count,

        -- touch
        marked.occurred_at,
        {{ touch_source }}.channel,
        {{ touch_source }}.campaign,
        {{ touch_source }}.touch_type,
        marked.person_type,
        {{ dbt.datediff('marked.occurred_at', 'marked.last_touch_at', 'microsecond') }}
        / 86400000000.0 as days_before_last_touch,

        -- markers
        marked.touch_position = 1 as is_first_touch,
        marked.touch_position
        = coalesce(marked.lead_creation_position, 1) as is_lead_creation_touch,
        marked.touch_position
        = coalesce(marked.opp_creation_position, 1) as is_opp_creation_touch,
        coalesce(
            marked.touch_position = marked.touch_count and opportunities.is_closed, false
        ) as is_closing_touch,

        -- opportunity
        marked.opportunity_created_at,
        marked.person_created_at,
        opportunities.created_date as opportunity_created_date,
        opportunities.close_date as opportunity_close_date,
        opportunities.status as opportunity_status,
        opportunities.is_won,
        opportunities.amount_usd

    from marked
    inner join opportunities
        on marked.opportunity_id = opportunities.opportunity_id
    {%- if not is_incremental() %}
    inner join touch_details
        on marked.touchpoint_id = touch_details.touchpoint_id
    {%- endif %}

)

select * from final
