with

checked as (

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
        value,
        reject_reason
    from {{ ref('stg_crm__engagement_events_checked') }}

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
        occurred_at,
        value
    from checked
    where reject_reason is null

)

select * from final
