{#- One training row per closed opportunity of an accepted account. Dated ones get engagement and persona
    features from before their cutoff (close time, else creation time), so nothing that happened after the
    deal closed can describe it; undated ones (lead exports often have won/lost without dates) fall back to
    the account's as-of features, and is_point_in_time says which. Fit features are account fields the CRM
    keeps only their current value of, so scoring reads them from account_features for every row. -#}

with

opportunities as (

    select
        opportunity_id,
        account_id,
        outcome
    from {{ ref('stg_crm__opportunities') }}
    where outcome in ('won', 'lost')

),

accounts as (

    select
        account_id,
        eng_events_30d,
        eng_events_90d,
        eng_events_180d,
        eng_decayed_intensity_30d,
        eng_decayed_intensity_90d,
        eng_decayed_intensity_180d,
        eng_pricing_views_30d,
        eng_pricing_views_90d,
        eng_has_pricing_view_30d,
        eng_third_party_intent_90d,
        eng_has_third_party_intent_90d,
        eng_web_visits_90d,
        eng_content_downloads_90d,
        eng_event_attendance_180d,
        eng_email_clicks_90d,
        eng_days_since_last_event,
        persona_contacts,
        persona_engaged_contacts_90d,
        persona_engaged_icp_personas_90d,
        persona_has_2plus_icp_personas,
        persona_committee_completeness
    from {{ ref('account_features') }}

),

engagement as (

    select
        opportunity_id,
        feature_cutoff_at,
        eng_events_30d,
        eng_events_90d,
        eng_events_180d,
        eng_decayed_intensity_30d,
        eng_decayed_intensity_90d,
        eng_decayed_intensity_180d,
        eng_pricing_views_30d,
        eng_pricing_views_90d,
        eng_has_pricing_view_30d,
        eng_third_party_intent_90d,
        eng_has_third_party_intent_90d,
        eng_web_visits_90d,
        eng_content_downloads_90d,
        eng_event_attendance_180d,
        eng_email_clicks_90d,
        eng_days_since_last_event
    from {{ ref('int_opportunities_engagement_aggregated') }}

),

personas as (

    select
        opportunity_id,
        persona_contacts,
        persona_engaged_contacts_90d,
        persona_engaged_icp_personas_90d,
        persona_has_2plus_icp_personas,
        persona_committee_completeness
    from {{ ref('int_opportunities_personas_aggregated') }}

),

point_in_time as (

    select
        opportunities.opportunity_id,
        opportunities.account_id,
        opportunities.outcome,
        engagement.feature_cutoff_at,
        true as is_point_in_time,
        engagement.eng_events_30d,
        engagement.eng_events_90d,
        engagement.eng_events_180d,
        engagement.eng_decayed_intensity_30d,
        engagement.eng_decayed_intensity_90d,
        engagement.eng_decayed_intensity_180d,
        engagement.eng_pricing_views_30d,
        engagement.eng_pricing_views_90d,
        engagement.eng_has_pricing_view_30d,
        engagement.eng_third_party_intent_90d,
        engagement.eng_has_third_party_intent_90d,
        engagement.eng_web_visits_90d,
        engagement.eng_content_downloads_90d,
        engagement.eng_event_attendance_180d,
        engagement.eng_email_clicks_90d,
        engagement.eng_days_since_last_event,
        personas.persona_contacts,
        personas.persona_engaged_contacts_90d,
        personas.persona_engaged_icp_personas_90d,
        personas.persona_has_2plus_icp_personas,
        personas.persona_committee_completeness
    from opportunities
    inner join engagement
        on opportunities.opportunity_id = engagement.opportunity_id
    inner join personas
        on opportunities.opportunity_id = personas.opportunity_id

),

as_of as (

    select
        opportunities.opportunity_id,
        opportunities.account_id,
        opportunities.outcome,
        cast(null as timestamp) as feature_cutoff_at,
        false as is_point_in_time,
        accounts.eng_events_30d,
        accounts.eng_events_90d,
        accounts.eng_events_180d,
        accounts.eng_decayed_intensity_30d,
        accounts.eng_decayed_intensity_90d,
        accounts.eng_decayed_intensity_180d,
        accounts.eng_pricing_views_30d,
        accounts.eng_pricing_views_90d,
        accounts.eng_has_pricing_view_30d,
        accounts.eng_third_party_intent_90d,
        accounts.eng_has_third_party_intent_90d,
        accounts.eng_web_visits_90d,
        accounts.eng_content_downloads_90d,
        accounts.eng_event_attendance_180d,
        accounts.eng_email_clicks_90d,
        accounts.eng_days_since_last_event,
        accounts.persona_contacts,
        accounts.persona_engaged_contacts_90d,
        accounts.persona_engaged_icp_personas_90d,
        accounts.persona_has_2plus_icp_personas,
        accounts.persona_committee_completeness
    from opportunities
    inner join accounts
        on opportunities.account_id = accounts.account_id
    left join engagement
        on opportunities.opportunity_id = engagement.opportunity_id
    where engagement.opportunity_id is null

),

final as (

    select * from point_in_time
    union all
    select * from as_of

)

select * from final
