{%- set window_days = var('kpi_window_days') -%}

with

activities as (

    select
        account_id,
        rep_id,
        activity_type,
        occurred_at
    from {{ ref('stg_crm__activities') }}

),

run_as_of as (

    select as_of_date from {{ ref('run_as_of') }}

),

aged as (

    select
        activities.account_id,
        activities.rep_id,
        activities.activity_type,
        {{ dbt.datediff('cast(activities.occurred_at as date)', 'run_as_of.as_of_date', 'day') | trim }} as age_days
    from activities
    cross join run_as_of

),

final as (

    select
        account_id,
        rep_id,
        age_days,
        case when activity_type like '%meeting%' then 1 else 0 end as is_meeting
    from aged
    where age_days >= 0 and age_days < {{ window_days }}

)

select * from final
