with

accounts as (

    select
        account_id,
        account_name,
        industry,
        country,
        state,
        city,
        latitude,
        longitude,
        parent_account_id,
        owner_rep_id
    from {{ ref('stg_crm__accounts') }}

),

fit as (

    select
        account_id,
        fit_industry,
        fit_size_band,
        fit_region,
        fit_log_employees,
        fit_log_annual_revenue,
        fit_technology_count,
        fit_has_parent,
        fit_child_count
    from {{ ref('int_accounts_fit_derived') }}

),

engagement as (

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
        eng_days_since_last_event
    from {{ ref('int_accounts_engagement_aggregated') }}

),

personas as (

    select
        account_id,
        persona_contacts,
        persona_engaged_contacts_90d,
        persona_engaged_icp_personas_90d,
        persona_has_2plus_icp_personas,
        persona_committee_completeness
    from {{ ref('int_accounts_personas_aggregated') }}

),

final as (

    select
        accounts.account_id,
        accounts.account_name,
        accounts.industry,
        fit.fit_region as region,
        accounts.country,
        accounts.state,
        accounts.city,
        accounts.latitude,
        accounts.longitude,
        accounts.parent_account_id,
        accounts.owner_rep_id,
        fit.fit_industry,
        fit.fit_size_band,
        fit.fit_region,
        fit.fit_log_employees,
        fit.fit_log_annual_revenue,
        fit.fit_technology_count,
        fit.fit_has_parent,
        fit.fit_child_count,
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
    from accounts
    inner join fit
        on accounts.account_id = fit.account_id
    inner join engagement
        on accounts.account_id = engagement.account_id
    inner join personas
        on accounts.account_id = personas.account_id

)

select * from final
