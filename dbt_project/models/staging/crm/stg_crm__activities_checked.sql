with

raw_activities as (

    select
        _source_file,
        _row_number,
        activity_id,
        account_id,
        rep_id,
        activity_type,
        occurred_at
    from {{ source('raw', 'activities') }}

),

accounts as (

    select account_id from {{ ref('stg_crm__accounts') }}

),

cleaned as (

    select
        _source_file,
        _row_number,
        -- Activity ids are optional: the file row number is a stable stand-in while the file is unchanged.
        coalesce({{ clean_text('activity_id') }}, 'row-' || cast(_row_number as varchar)) as activity_id,
        {{ clean_text('account_id') }} as account_id,
        {{ clean_text('rep_id') }} as rep_id,
        {{ normalize_code('activity_type') }} as activity_type,
        {{ clean_text('occurred_at') }} as occurred_at
    from raw_activities

),

duplicate_rows as (

    {{ later_duplicate_rows(source('raw', 'activities'), 'activity_id') }}

),

final as (

    select
        _source_file,
        _row_number,
        activity_id,
        account_id,
        rep_id,
        activity_type,
        {{ parse_timestamp('occurred_at') }} as occurred_at,
        coalesce(
            {{ reject_if_empty('account_id') }},
            {{ reject_if_empty('occurred_at') }},
            {{ reject_if_not_date('occurred_at') }},
            {{ reject_if_duplicate('activity_id', 'duplicate_rows') }},
            {{ reject_if_unknown_account('accounts') }}
        ) as reject_reason
    from cleaned

)

select * from final
