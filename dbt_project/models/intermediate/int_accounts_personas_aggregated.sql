with

accounts as (

    select account_id from {{ ref('stg_crm__accounts') }}

),

contacts as (

    select
        contact_id,
        account_id,
        persona,
        is_icp,
        committee_role
    from {{ ref('int_contacts_personas_mapped') }}

),

events as (

    select
        account_id,
        contact_id,
        age_days
    from {{ ref('int_engagement_events_aged') }}
    where contact_id is not null

),

personas as (

    select committee_role from {{ ref('personas') }}

),

committee as (

    select count(distinct committee_role) as committee_roles
    from personas

),

contact_counts as (

    select
        account_id,
        count(*) as contacts
    from contacts
    group by account_id

),

-- An engaged contact is one named on an event of the account in the last 90 days; its persona comes
-- from the contacts file (none when the contact is not listed there).
engaged_contacts as (

    select distinct
        events.account_id,
        events.contact_id,
        contacts.persona,
        contacts.is_icp,
        contacts.committee_role
    from events
    left join contacts
        on events.contact_id = contacts.contact_id
    where events.age_days < 90

),

engagement as (

    select
        account_id,
        count(*) as engaged_contacts,
        count(distinct case when is_icp then persona end) as engaged_icp_personas,
        count(distinct committee_role) as engaged_committee_roles
    from engaged_contacts
    group by account_id

),

final as (

    select
        accounts.account_id,
        coalesce(contact_counts.contacts, 0) as persona_contacts,
        coalesce(engagement.engaged_contacts, 0) as persona_engaged_contacts_90d,
        coalesce(engagement.engaged_icp_personas, 0) as persona_engaged_icp_personas_90d,
        case when engagement.engaged_icp_personas >= 2 then 1 else 0 end as persona_has_2plus_icp_personas,
        coalesce(engagement.engaged_committee_roles, 0)
        / cast(nullif(committee.committee_roles, 0) as double) as persona_committee_completeness
    from accounts
    cross join committee
    left join contact_counts
        on accounts.account_id = contact_counts.account_id
    left join engagement
        on accounts.account_id = engagement.account_id

)

select * from final
