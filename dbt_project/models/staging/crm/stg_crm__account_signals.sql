with

checked as (

    select
        _source_file,
        _row_number,
        account_id,
        layer,
        signal,
        value,
        value_text,
        observed_at,
        reject_reason
    from {{ ref('stg_crm__account_signals_checked') }}

),

final as (

    select
        _source_file,
        _row_number,
        account_id,
        layer,
        signal,
        value,
        value_text,
        observed_at
    from checked
    where reject_reason is null

)

select * from final
