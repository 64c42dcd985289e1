with

raw_engagement_events as (

    select
        _source_file,
        _row_number,
        event_id,
        account_id,
        contact_id,
        event_type,
        source,
        topic,
        occurred_at,
        value
    from {{ source('raw', 'engagement_events') }}

),

accounts as (

    select account_id from {{ ref('stg_crm__accounts') }}

),

cleaned as (

    select
        _source_file,
        _row_number,
        -- Event ids are optional: the file row number is a stable stand-in while the file is unchanged.
        coalesce({{ clean_text('event_id') }}, 'row-' || cast(_row_number as varchar)) as event_id,
        {{ clean_text('account_id') }} as account_id,
        {{ clean_text('contact_id') }} as contact_id,
        -- Codes are normalised on the raw column: its few distinct values are then processed once each.
        {{ normalize_code('event_type') }} as event_type,
        {{ normalize_code('source') }} as source,
        {{ clean_text('topic') }} as topic,
        {{ clean_text('occurred_at') }} as occurred_at,
        {{ clean_text('value') }} as value
    from raw_engagement_events

),

duplicate_rows as (

    {{ later_duplicate_rows(source('raw', 'engagement_events'), 'event_id') }}

),

final as (

    select
        _source_file,
        _row_number,
        event_id,
        account_id,
        contact_id,
        event_type,
        source,
        topic,
        {{ parse_timestamp('occurred_at') }} as occurred_at,
        {{ dbt.safe_cast('value', 'double') }} as value,
        coalesce(
            {{ reject_if_empty('account_id') }},
            {{ reject_if_empty('event_type') }},
            {{ reject_if_empty('occurred_at') }},
            {{ reject_if_not_date('occurred_at') }},
            {{ reject_if_not_number('value') }},
            {{ reject_if_negative('value') }},
            {{ reject_if_duplicate('event_id', 'duplicate_rows') }},
            {{ reject_if_unknown_account('accounts') }}
        ) as reject_reason
    from cleaned

)

select * from final
