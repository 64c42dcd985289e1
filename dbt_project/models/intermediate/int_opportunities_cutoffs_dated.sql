{#- The moment a closed opportunity's training features are computed for: its close time, else its creation
    time. Only events strictly before it may describe the opportunity; undated opportunities have no row. -#}

with

opportunities as (

    select
        opportunity_id,
        account_id,
        outcome,
        created_at,
        closed_at
    from {{ ref('stg_crm__opportunities') }}

),

final as (

    select
        opportunity_id,
        account_id,
        coalesce(closed_at, created_at) as feature_cutoff_at,
        cast(coalesce(closed_at, created_at) as date) as feature_cutoff_on
    from opportunities
    where
        outcome in ('won', 'lost')
        and coalesce(closed_at, created_at) is not null

)

select * from final
