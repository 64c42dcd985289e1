with

reps as (

    select
        rep_id,
        name,
        role,
        region,
        segment,
        capacity_accounts,
        latitude,
        longitude,
        manager_id,
        start_date
    from {{ ref('stg_crm__reps') }}

),

final as (

    select
        rep_id,
        name,
        -- A reps file without roles is a list of account executives.
        coalesce(role, 'AE') as role,
        region,
        segment,
        capacity_accounts,
        latitude,
        longitude,
        manager_id,
        start_date
    from reps

)

select * from final
