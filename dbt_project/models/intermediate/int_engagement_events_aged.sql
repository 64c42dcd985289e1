with

events as (

    select
        event_id,
        account_id,
        contact_id,
        event_type,
        source,
        occurred_at,
        cast(occurred_at as date) as occurred_on,
        value
    from {{ ref('stg_crm__engagement_events') }}

),

event_types as (

    select
        event_type,
        category,
        is_third_party
    from {{ ref('event_types') }}

),

run_as_of as (

    select as_of_date from {{ ref('run_as_of') }}

),

aged as (

    select
        events.event_id,
        events.account_id,
        events.contact_id,
        events.event_type,
        event_types.category,
        -- The event's own source, when given, beats the usual provenance of its type.
        coalesce(
            case events.source when 'third_party' then true when 'first_party' then false end,
            event_types.is_third_party,
            false
        ) as is_third_party,
        events.occurred_at,
        {{ dbt.datediff('events.occurred_on', 'run_as_of.as_of_date', 'day') | trim }} as age_days,
        coalesce(events.value, 1) as weight
    from events
    cross join run_as_of
    left join event_types
        on events.event_type = event_types.event_type
    -- Features describe what was known on the as-of date: later events would leak the outcome.
    where events.occurred_on <= run_as_of.as_of_date

),

final as (

    select
        event_id,
        account_id,
        contact_id,
        event_type,
        category,
        is_third_party,
        occurred_at,
        age_days,
        weight,
        {{ decayed_weight('weight', 'age_days') }} as decayed_weight
    from aged

)

select * from final
