with

checked as (

    select
        _source_file,
        _row_number,
        rep_id,
        name,
        role,
        region,
        segment,
        capacity_accounts,
        latitude,
        longitude,
        manager_id,
        start_date,
        reject_reason
    from {{ ref('stg_crm__reps_checked') }}

),

final as (

    select
        _source_file,
        _row_number,
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
    from checked
    where reject_reason is null

)

select * from final
