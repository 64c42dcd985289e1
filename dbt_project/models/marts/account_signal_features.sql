with

signals as (

    select
        _row_number,
        account_id,
        layer,
        signal,
        value,
        value_text,
        observed_at
    from {{ ref('stg_crm__account_signals') }}

),

run_as_of as (

    select as_of_date from {{ ref('run_as_of') }}

),

ranked as (

    select
        signals.account_id,
        signals.layer,
        signals.signal,
        signals.value,
        signals.value_text,
        -- Dated observations beat undated ones; among equals the later file row is the correction.
        row_number() over (
            partition by signals.account_id, signals.signal
            order by signals.observed_at desc nulls last, signals._row_number desc
        ) as recency_rank
    from signals
    cross join run_as_of
    where
        signals.observed_at is null
        or cast(signals.observed_at as date) <= run_as_of.as_of_date

),

final as (

    select
        account_id,
        layer,
        signal,
        value,
        value_text
    from ranked
    where recency_rank = 1

)

select * from final
