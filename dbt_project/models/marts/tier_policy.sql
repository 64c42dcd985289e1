with

tier_plays as (

    select
        tier,
        owner_role,
        sla_hours,
        play
    from {{ ref('tier_plays') }}

),

final as (

    select
        tier,
        owner_role,
        sla_hours,
        play
    from tier_plays

)

select * from final
