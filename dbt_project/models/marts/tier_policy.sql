with

seed_tier_policy as (

    select
        tier,
        owner_role,
        sla_hours,
        play
    from {{ ref('seed_tier_policy') }}

),

final as (

    select
        tier,
        owner_role,
        sla_hours,
        play
    from seed_tier_policy

)

select * from final
