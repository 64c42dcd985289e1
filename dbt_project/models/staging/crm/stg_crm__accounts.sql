with

checked as (

    select
        _source_file,
        _row_number,
        account_id,
        account_name,
        industry,
        employees,
        annual_revenue,
        country,
        state,
        city,
        postal_code,
        latitude,
        longitude,
        technologies,
        parent_account_id,
        owner_rep_id,
        created_at,
        reject_reason
    from {{ ref('stg_crm__accounts_checked') }}

),

final as (

    select
        _source_file,
        _row_number,
        account_id,
        account_name,
        industry,
        employees,
        annual_revenue,
        country,
        state,
        city,
        postal_code,
        latitude,
        longitude,
        technologies,
        parent_account_id,
        owner_rep_id,
        created_at
    from checked
    where reject_reason is null

)

select * from final
