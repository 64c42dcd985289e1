with

raw_opportunities as (

    select
        _source_file,
        _row_number,
        opportunity_id,
        account_id,
        stage,
        created_at,
        closed_at,
        amount
    from {{ source('raw', 'opportunities') }}

),

accounts as (

    select account_id from {{ ref('stg_crm__accounts') }}

),

cleaned as (

    select
        _source_file,
        _row_number,
        {{ clean_text('opportunity_id') }} as opportunity_id,
        {{ clean_text('account_id') }} as account_id,
        {{ clean_text('stage') }} as stage,
        {{ clean_text('created_at') }} as created_at,
        {{ clean_text('closed_at') }} as closed_at,
        {{ clean_text('amount') }} as amount
    from raw_opportunities

),

duplicate_rows as (

    {{ later_duplicate_rows(source('raw', 'opportunities'), 'opportunity_id') }}

),

final as (

    select
        _source_file,
        _row_number,
        opportunity_id,
        account_id,
        stage,
        {{ stage_outcome('stage') }} as outcome,
        {{ parse_timestamp('created_at') }} as created_at,
        {{ parse_timestamp('closed_at') }} as closed_at,
        {{ dbt.safe_cast('amount', 'double') }} as amount,
        coalesce(
            {{ reject_if_empty('opportunity_id') }},
            {{ reject_if_empty('account_id') }},
            {{ reject_if_empty('stage') }},
            {{ reject_if_not_date('created_at') }},
            {{ reject_if_not_date('closed_at') }},
            {{ reject_if_not_number('amount') }},
            {{ reject_if_duplicate('opportunity_id', 'duplicate_rows') }},
            {{ reject_if_unknown_account('accounts') }}
        ) as reject_reason
    from cleaned

)

select * from final
