{#- account_persona_engagement as each closed opportunity's training row may see it: for a dated opportunity
    the contacts engaged in the 90 days before its cutoff, for an undated one the account's as-of counts. -#}

with

opportunities as (

    select
        opportunity_id,
        account_id
    from {{ ref('stg_crm__opportunities') }}
    where outcome in ('won', 'lost')

),

cutoffs as (

    select
        opportunity_id,
        account_id,
        feature_cutoff_at,
        feature_cutoff_on
    from {{ ref('int_opportunities_cutoffs_dated') }}

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
        contact_id,
        occurred_at
    from {{ ref('int_engagement_events_aged') }}
    where contact_id is not null

),

as_of_engagement as (

    select
        account_id,
        persona,
        engaged_contacts_90d
    from {{ ref('account_persona_engagement') }}

),

engaged as (

    select
        cutoffs.opportunity_id,
        contacts.persona,
        count(distinct events.contact_id) as engaged_contacts
    from cutoffs
    inner join events
        on
            cutoffs.account_id = events.account_id
            and cutoffs.feature_cutoff_at > events.occurred_at
    inner join contacts
        on events.contact_id = contacts.contact_id
    where
        {{ dbt.datediff('cast(events.occurred_at as date)', 'cutoffs.feature_cutoff_on', 'day') | trim }} < 90
    group by cutoffs.opportunity_id, contacts.persona

),

point_in_time as (

    select
        cutoffs.opportunity_id,
        cutoffs.account_id,
        personas.persona,
        coalesce(engaged.engaged_contacts, 0) as engaged_contacts_90d
    from cutoffs
    cross join personas
    left join engaged
        on
            cutoffs.opportunity_id = engaged.opportunity_id
            and personas.persona = engaged.persona

),

undated as (

    select
        opportunities.opportunity_id,
        opportunities.account_id,
        as_of_engagement.persona,
        as_of_engagement.engaged_contacts_90d
    from opportunities
    inner join as_of_engagement
        on opportunities.account_id = as_of_engagement.account_id
    left join cutoffs
        on opportunities.opportunity_id = cutoffs.opportunity_id
    where cutoffs.opportunity_id is null

),

final as (

    select * from point_in_time
    union all
    select * from undated

)

select * from final
