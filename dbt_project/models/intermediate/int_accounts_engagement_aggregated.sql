{#- A window of N days holds the events of the as-of date and the N - 1 days before it (age_days < N). -#}

with

accounts as (

    select account_id from {{ ref('stg_crm__accounts') }}

),

events as (

    select
        account_id,
        category,
        is_third_party,
        age_days,
        decayed_weight
    from {{ ref('int_engagement_events_aged') }}

),

per_account as (

    select
        account_id,
        {{ engagement_window_aggregates() | indent(8) }}
    from events
    group by account_id

),

final as (

    select
        accounts.account_id,
        {{ engagement_feature_columns('per_account') | indent(8) }}
    from accounts
    left join per_account
        on accounts.account_id = per_account.account_id

)

select * from final
