{#- Engagement features of each dated closed opportunity from the events before its cutoff, with the same
    windows as the account features (age_days counts back from the cutoff date). The join is on account_id
    with a range condition, so its size is each opportunity's own account history, never a cross product. -#}

with

cutoffs as (

    select
        opportunity_id,
        account_id,
        feature_cutoff_at,
        feature_cutoff_on
    from {{ ref('int_opportunities_cutoffs_dated') }}

),

events as (

    select
        account_id,
        category,
        is_third_party,
        occurred_at,
        weight
    from {{ ref('int_engagement_events_aged') }}

),

aged as (

    select
        cutoffs.opportunity_id,
        events.category,
        events.is_third_party,
        events.weight,
        {{ dbt.datediff('cast(events.occurred_at as date)', 'cutoffs.feature_cutoff_on', 'day') | trim }} as age_days
    from cutoffs
    inner join events
        on
            cutoffs.account_id = events.account_id
            and events.occurred_at < cutoffs.feature_cutoff_at

),

weighted as (

    select
        opportunity_id,
        category,
        is_third_party,
        age_days,
        {{ decayed_weight('weight', 'age_days') }} as decayed_weight
    from aged

),

per_opportunity as (

    select
        opportunity_id,
        {{ engagement_window_aggregates() | indent(8) }}
    from weighted
    group by opportunity_id

),

final as (

    select
        cutoffs.opportunity_id,
        cutoffs.account_id,
        cutoffs.feature_cutoff_at,
        {{ engagement_feature_columns('per_opportunity') | indent(8) }}
    from cutoffs
    left join per_opportunity
        on cutoffs.opportunity_id = per_opportunity.opportunity_id

)

select * from final
