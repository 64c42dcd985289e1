with

checked as (

    select
        _source_file,
        _row_number,
        activity_id,
        account_id,
        rep_id,
        activity_type,
        occurred_at,
        reject_reason
    from {{ ref('stg_crm__activities_checked') }}

),

final as (

    select
        _source_file,
        _row_number,
        activity_id,
        account_id,
        rep_id,
        activity_type,
        occurred_at
    from checked
    where reject_reason is null

)

select * from final
