-- Sales reps: users who own an opportunity or carry a quota, with their role, team (manager),
-- employment window and hire date (falling back to the user's creation date).

with

users as (

    select * from {{ ref('stg_salesforce__users') }}

),

roles as (

    select * from {{ ref('stg_salesforce__user_roles') }}

),

opportunity_owners as (

    select distinct owner_id as user_id
    from {{ ref('stg_salesforce__opportunities') }}

),

quota_owners as (

    select distinct quota_owner_id as user_id
    from {{ ref('stg_salesforce__forecasting_quotas') }}

),

rep_ids as (

    select user_id from opportunity_owners
    union
    select user_id from quota_owners

)

select
    users.user_id,
    users.name as rep_name,
    users.title,
    roles.name as role_name,
    users.manager_id,
    managers.name as manager_name,
    users.segment,
    users.region,
    users.is_active,
    coalesce(users.hire_date, cast(users.created_date as date)) as hire_date,
    users.termination_date,
    users.user_id in (select user_id from quota_owners) as has_quota

from users
inner join rep_ids
    on users.user_id = rep_ids.user_id
left join roles
    on users.user_role_id = roles.user_role_id
left join users as managers
    on users.manager_id = managers.user_id
