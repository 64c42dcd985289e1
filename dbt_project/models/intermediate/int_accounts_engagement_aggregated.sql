{#- A window of N days holds the events of the as-of date and the N - 1 days before it (age_days < N). -#}

with

accounts as (

    select account_id from {{ ref('stg_crm__accounts') }}

),

events as (

    select
        account_id,
        category,
        is_third_party,
        age_days,
        decayed_weight
    from {{ ref('int_engagement_events_aged') }}

),

per_account as (

    select
        account_id,
        count(case when age_days < 30 then 1 end) as events_30d,
        count(case when age_days < 90 then 1 end) as events_90d,
        count(case when age_days < 180 then 1 end) as events_180d,
        sum(case when age_days < 30 then decayed_weight end) as decayed_intensity_30d,
        sum(case when age_days < 90 then decayed_weight end) as decayed_intensity_90d,
        sum(case when age_days < 180 then decayed_weight end) as decayed_intensity_180d,
        count(case when age_days < 30 and category = 'pricing' then 1 end) as pricing_views_30d,
        count(case when age_days < 90 and category = 'pricing' then 1 end) as pricing_views_90d,
        count(case when age_days < 90 and is_third_party then 1 end) as third_party_intent_90d,
        -- A pricing page view is a web visit too.
        count(case when age_days < 90 and category in ('web', 'pricing') then 1 end) as web_visits_90d,
        count(case when age_days < 90 and category = 'content' then 1 end) as content_downloads_90d,
        count(case when age_days < 180 and category = 'event' then 1 end) as event_attendance_180d,
        count(case when age_days < 90 and category = 'email' then 1 end) as email_clicks_90d,
        min(age_days) as days_since_last_event
    from events
    group by account_id

),

final as (

    select
        accounts.account_id,
        coalesce(per_account.events_30d, 0) as eng_events_30d,
        coalesce(per_account.events_90d, 0) as eng_events_90d,
        coalesce(per_account.events_180d, 0) as eng_events_180d,
        coalesce(per_account.decayed_intensity_30d, 0.0) as eng_decayed_intensity_30d,
        coalesce(per_account.decayed_intensity_90d, 0.0) as eng_decayed_intensity_90d,
        coalesce(per_account.decayed_intensity_180d, 0.0) as eng_decayed_intensity_180d,
        coalesce(per_account.pricing_views_30d, 0) as eng_pricing_views_30d,
        coalesce(per_account.pricing_views_90d, 0) as eng_pricing_views_90d,
        case when per_account.pricing_views_30d > 0 then 1 else 0 end as eng_has_pricing_view_30d,
        coalesce(per_account.third_party_intent_90d, 0) as eng_third_party_intent_90d,
        case when per_account.third_party_intent_90d > 0 then 1 else 0 end as eng_has_third_party_intent_90d,
        coalesce(per_account.web_visits_90d, 0) as eng_web_visits_90d,
        coalesce(per_account.content_downloads_90d, 0) as eng_content_downloads_90d,
        coalesce(per_account.event_attendance_180d, 0) as eng_event_attendance_180d,
        coalesce(per_account.email_clicks_90d, 0) as eng_email_clicks_90d,
        per_account.days_since_last_event as eng_days_since_last_event
    from accounts
    left join per_account
        on accounts.account_id = per_account.account_id

)

select * from final
