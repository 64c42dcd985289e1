{#- Engaged contacts per account and persona over the last 90 days, one row for every persona of the seed
    (zero included), so scoring can learn from outcomes which roles of the buying committee matter instead
    of relying on the seed's is_icp flag alone. -#}

with

accounts as (

    select account_id from {{ ref('stg_crm__accounts') }}

),

personas as (

    select persona from {{ ref('personas') }}

),

contacts as (

    select
        contact_id,
        persona
    from {{ ref('int_contacts_personas_mapped') }}

),

events as (

    select
        account_id,
        contact_id
    from {{ ref('int_engagement_events_aged') }}
    where
        contact_id is not null
        and age_days < 90

),

-- A contact the contacts file does not list has no persona, so it counts for none.
engaged as (

    select
        events.account_id,
        contacts.persona,
        count(distinct events.contact_id) as engaged_contacts
    from events
    inner join contacts
        on events.contact_id = contacts.contact_id
    group by events.account_id, contacts.persona

),

final as (

    select
        accounts.account_id,
        personas.persona,
        coalesce(engaged.engaged_contacts, 0) as engaged_contacts_90d
    from accounts
    cross join personas
    left join engaged
        on
            accounts.account_id = engaged.account_id
            and personas.persona = engaged.persona

)

select * from final
