{#- Buying-committee coverage of each dated closed opportunity before its cutoff: contacts created before it
    (undated contacts count), and the contacts, personas and committee roles engaged in the 90 days up to it. -#}

with

cutoffs as (

    select
        opportunity_id,
        account_id,
        feature_cutoff_at,
        feature_cutoff_on
    from {{ ref('int_opportunities_cutoffs_dated') }}

),

contacts as (

    select
        mapped.contact_id,
        mapped.account_id,
        mapped.persona,
        mapped.is_icp,
        mapped.committee_role,
        staged.created_at
    from {{ ref('int_contacts_personas_mapped') }} as mapped
    inner join {{ ref('stg_crm__contacts') }} as staged
        on mapped.contact_id = staged.contact_id

),

events as (

    select
        account_id,
        contact_id,
        occurred_at
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
        cutoffs.opportunity_id,
        count(*) as contacts
    from cutoffs
    inner join contacts
        on
            cutoffs.account_id = contacts.account_id
            and (contacts.created_at is null or contacts.created_at < cutoffs.feature_cutoff_at)
    group by cutoffs.opportunity_id

),

engaged_contacts as (

    select distinct
        cutoffs.opportunity_id,
        events.contact_id,
        contacts.persona,
        contacts.is_icp,
        contacts.committee_role
    from cutoffs
    inner join events
        on
            cutoffs.account_id = events.account_id
            and events.occurred_at < cutoffs.feature_cutoff_at
    left join contacts
        on events.contact_id = contacts.contact_id
    where
        {{ dbt.datediff('cast(events.occurred_at as date)', 'cutoffs.feature_cutoff_on', 'day') | trim }} < 90

),

engagement as (

    select
        opportunity_id,
        count(*) as engaged_contacts,
        count(distinct case when is_icp then persona end) as engaged_icp_personas,
        count(distinct committee_role) as engaged_committee_roles
    from engaged_contacts
    group by opportunity_id

),

final as (

    select
        cutoffs.opportunity_id,
        cutoffs.account_id,
        cutoffs.feature_cutoff_at,
        coalesce(contact_counts.contacts, 0) as persona_contacts,
        coalesce(engagement.engaged_contacts, 0) as persona_engaged_contacts_90d,
        coalesce(engagement.engaged_icp_personas, 0) as persona_engaged_icp_personas_90d,
        case when engagement.engaged_icp_personas >= 2 then 1 else 0 end as persona_has_2plus_icp_personas,
        coalesce(engagement.engaged_committee_roles, 0)
        / cast(nullif(committee.committee_roles, 0) as double) as persona_committee_completeness
    from cutoffs
    cross join committee
    left join contact_counts
        on cutoffs.opportunity_id = contact_counts.opportunity_id
    left join engagement
        on cutoffs.opportunity_id = engagement.opportunity_id

)

select * from final
