with

opportunities as (

    select
        opportunity_id,
        account_id,
        outcome,
        created_at,
        closed_at,
        amount
    from {{ ref('stg_crm__opportunities') }}

),

final as (

    select
        opportunity_id,
        account_id,
        outcome,
        created_at,
        closed_at,
        amount
    from opportunities

)

select * from final
