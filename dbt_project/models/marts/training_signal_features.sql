{#- account_signal_features as each closed opportunity's training row may see them: for a dated opportunity
    the latest value observed before its cutoff (undated values count as observed, dated ones win, a later
    file row wins a tie); for an undated one the account's as-of values. -#}

with

opportunities as (

    select
        opportunity_id,
        account_id
    from {{ ref('stg_crm__opportunities') }}
    where outcome in ('won', 'lost')

),

cutoffs as (

    select
        opportunity_id,
        account_id,
        feature_cutoff_at
    from {{ ref('int_opportunities_cutoffs_dated') }}

),

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

as_of_signals as (

    select
        account_id,
        layer,
        signal,
        value,
        value_text
    from {{ ref('account_signal_features') }}

),

ranked as (

    select
        cutoffs.opportunity_id,
        cutoffs.account_id,
        signals.layer,
        signals.signal,
        signals.value,
        signals.value_text,
        row_number() over (
            partition by cutoffs.opportunity_id, signals.signal
            order by signals.observed_at desc nulls last, signals._row_number desc
        ) as recency_rank
    from cutoffs
    inner join signals
        on
            cutoffs.account_id = signals.account_id
            and (signals.observed_at is null or cutoffs.feature_cutoff_at > signals.observed_at)

),

point_in_time as (

    select
        opportunity_id,
        account_id,
        layer,
        signal,
        value,
        value_text
    from ranked
    where recency_rank = 1

),

undated as (

    select
        opportunities.opportunity_id,
        opportunities.account_id,
        as_of_signals.layer,
        as_of_signals.signal,
        as_of_signals.value,
        as_of_signals.value_text
    from opportunities
    inner join as_of_signals
        on opportunities.account_id = as_of_signals.account_id
    left join cutoffs
        on opportunities.opportunity_id = cutoffs.opportunity_id
    where cutoffs.opportunity_id is null

),

final as (

    select * from point_in_time
    union all
    select * from undated

)

select * from final
