with

contacts as (

    select
        contact_id,
        account_id,
        title
    from {{ ref('stg_crm__contacts') }}

),

title_map as (

    select
        priority,
        pattern,
        persona
    from {{ ref('persona_title_map') }}

),

personas as (

    select
        persona,
        is_icp,
        committee_role
    from {{ ref('personas') }}

),

-- Titles repeat a lot, so each distinct title is matched once rather than once per contact.
titles as (

    select distinct lower(title) as title_key
    from contacts
    where title is not null

),

matches as (

    select
        titles.title_key,
        title_map.persona,
        row_number() over (partition by titles.title_key order by title_map.priority) as match_rank
    from titles
    inner join title_map
        on regexp_matches(titles.title_key, title_map.pattern)

),

best_matches as (

    select
        title_key,
        persona
    from matches
    where match_rank = 1

),

mapped as (

    select
        contacts.contact_id,
        contacts.account_id,
        contacts.title,
        coalesce(best_matches.persona, 'other') as persona
    from contacts
    left join best_matches
        on lower(contacts.title) = best_matches.title_key

),

final as (

    select
        mapped.contact_id,
        mapped.account_id,
        mapped.title,
        mapped.persona,
        coalesce(personas.is_icp, false) as is_icp,
        personas.committee_role
    from mapped
    left join personas
        on mapped.persona = personas.persona

)

select * from final
