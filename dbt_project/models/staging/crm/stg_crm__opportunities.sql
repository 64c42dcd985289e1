with

checked as (

    select
        _source_file,
        _row_number,
        opportunity_id,
        account_id,
        stage,
        outcome,
        created_at,
        closed_at,
        amount,
        reject_reason
    from {{ ref('stg_crm__opportunities_checked') }}

),

final as (

    select
        _source_file,
        _row_number,
        opportunity_id,
        account_id,
        stage,
        outcome,
        created_at,
        closed_at,
        amount
    from checked
    where reject_reason is null

)

select * from final
