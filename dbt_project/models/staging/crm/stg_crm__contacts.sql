with

checked as (

    select
        _source_file,
        _row_number,
        contact_id,
        account_id,
        title,
        email,
        created_at,
        reject_reason
    from {{ ref('stg_crm__contacts_checked') }}

),

final as (

    select
        _source_file,
        _row_number,
        contact_id,
        account_id,
        title,
        email,
        created_at
    from checked
    where reject_reason is null

)

select * from final
