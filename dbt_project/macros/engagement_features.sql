{#- The engagement windows, shared by the as-of account features and the point-in-time training rows so
    both describe an account the same way. Rows need age_days (0 = the day features are computed for),
    category, is_third_party and decayed_weight; a window of N days holds the rows with age_days < N. -#}

{% macro engagement_window_aggregates() -%}
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
{%- endmacro %}

{% macro engagement_feature_columns(aggregated) -%}
    {#- The eng_* columns from a left-joined engagement_window_aggregates() relation: 0 without events. -#}
    coalesce({{ aggregated }}.events_30d, 0) as eng_events_30d,
    coalesce({{ aggregated }}.events_90d, 0) as eng_events_90d,
    coalesce({{ aggregated }}.events_180d, 0) as eng_events_180d,
    coalesce({{ aggregated }}.decayed_intensity_30d, 0.0) as eng_decayed_intensity_30d,
    coalesce({{ aggregated }}.decayed_intensity_90d, 0.0) as eng_decayed_intensity_90d,
    coalesce({{ aggregated }}.decayed_intensity_180d, 0.0) as eng_decayed_intensity_180d,
    coalesce({{ aggregated }}.pricing_views_30d, 0) as eng_pricing_views_30d,
    coalesce({{ aggregated }}.pricing_views_90d, 0) as eng_pricing_views_90d,
    case when {{ aggregated }}.pricing_views_30d > 0 then 1 else 0 end as eng_has_pricing_view_30d,
    coalesce({{ aggregated }}.third_party_intent_90d, 0) as eng_third_party_intent_90d,
    case when {{ aggregated }}.third_party_intent_90d > 0 then 1 else 0 end as eng_has_third_party_intent_90d,
    coalesce({{ aggregated }}.web_visits_90d, 0) as eng_web_visits_90d,
    coalesce({{ aggregated }}.content_downloads_90d, 0) as eng_content_downloads_90d,
    coalesce({{ aggregated }}.event_attendance_180d, 0) as eng_event_attendance_180d,
    coalesce({{ aggregated }}.email_clicks_90d, 0) as eng_email_clicks_90d,
    {{ aggregated }}.days_since_last_event as eng_days_since_last_event
{%- endmacro %}

{% macro decayed_weight(weight, age_days) -%}
    {%- set half_life_days = var('engagement_half_life_days') | float -%}
    {%- if half_life_days <= 0 -%}
        {{ exceptions.raise_compiler_error(
            "var engagement_half_life_days must be a positive number of days, got '"
            ~ var('engagement_half_life_days') ~ "'"
        ) }}
    {%- endif -%}
    {{ weight }} * power(0.5, {{ age_days }} / {{ half_life_days }})
{%- endmacro %}
