with

opportunities as (

    select
        opportunity_id,
        account_id,
        outcome,
        closed_at
    from {{ ref('opportunity_outcomes') }}

),

predictions as (

    select
        account_id,
        predicted_as_of,
        model_version,
        conversion_probability
    from {{ source('pipeline', 'score_history') }}

),

closed as (

    select
        opportunity_id,
        account_id,
        case when outcome = 'won' then 1 else 0 end as won,
        cast(closed_at as date) as closed_on
    from opportunities
    where outcome in ('won', 'lost') and closed_at is not null

),

candidates as (

    -- Only predictions from features dated before the close: the outcome was not known yet.
    select
        closed.opportunity_id,
        closed.account_id,
        closed.won,
        closed.closed_on,
        predictions.predicted_as_of,
        predictions.model_version,
        predictions.conversion_probability,
        row_number() over (
            partition by closed.opportunity_id order by predictions.predicted_as_of desc
        ) as recency_rank
    from closed
    inner join predictions
        on
            closed.account_id = predictions.account_id
            and closed.closed_on > predictions.predicted_as_of

),

final as (

    select
        opportunity_id,
        account_id,
        won,
        closed_on,
        predicted_as_of,
        model_version,
        conversion_probability,
        (conversion_probability - won) * (conversion_probability - won) as squared_error
    from candidates
    where recency_rank = 1

)

select * from final
