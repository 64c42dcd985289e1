{%- set window_days = var('kpi_window_days') -%}

with

assignments as (

    select
        account_id,
        tier,
        territory_id,
        rep_id
    from {{ source('pipeline', 'territory_assignments') }}

),

features as (

    select
        account_id,
        persona_engaged_icp_personas_90d
    from {{ ref('account_features') }}

),

opportunities as (

    select
        account_id,
        outcome,
        created_at,
        closed_at,
        amount
    from {{ ref('opportunity_outcomes') }}

),

activities as (

    select
        account_id,
        is_meeting
    from {{ ref('int_activities_windowed') }}

),

forecasts as (

    select
        account_id,
        squared_error
    from {{ ref('int_opportunities_forecast_graded') }}

),

attributes as (

    select
        account_id,
        attribute,
        value
    from {{ ref('account_attribute_values') }}

),

run_as_of as (

    select as_of_date from {{ ref('run_as_of') }}

),

outcome_dating as (

    -- Won and lost outcomes can be windowed only when every one of them carries its close date. An export
    -- that dates its wins but not its losses (an MQL list with the won deals joined on) would otherwise count
    -- every undated loss against only the wins of the window; such a book is judged on all its outcomes.
    select coalesce(bool_and(closed_at is not null), true) as closed_dates_complete
    from opportunities
    where outcome in ('won', 'lost')

),

opportunities_dated as (

    -- An opportunity without a creation date counts as created inside the window: nothing says it was not.
    select
        opportunities.account_id,
        opportunities.outcome,
        coalesce(opportunities.amount, 0) as amount,
        coalesce(
            {{ dbt.datediff('cast(opportunities.created_at as date)', 'run_as_of.as_of_date', 'day') | trim }}
            between 0 and {{ window_days - 1 }},
            true
        ) as is_created_in_window,
        case
            when not outcome_dating.closed_dates_complete then true
            else {{ dbt.datediff('cast(opportunities.closed_at as date)', 'run_as_of.as_of_date', 'day') | trim }}
                between 0 and {{ window_days - 1 }}
        end as is_closed_in_window
    from opportunities
    cross join run_as_of
    cross join outcome_dating

),

opportunity_measures as (

    select
        account_id,
        sum(case when outcome = 'open' then amount else 0 end) as open_pipeline_amount,
        sum(case when outcome in ('won', 'lost') and is_closed_in_window then 1 else 0 end) as closed_opportunities,
        sum(case when outcome = 'won' and is_closed_in_window then 1 else 0 end) as won_opportunities,
        sum(case when outcome = 'won' and is_closed_in_window then amount else 0 end) as won_amount,
        max(case when is_created_in_window then 1 else 0 end) as created_opportunity
    from opportunities_dated
    group by account_id

),

activity_measures as (

    select
        account_id,
        count(*) as touches,
        max(is_meeting) as had_meeting
    from activities
    group by account_id

),

forecast_measures as (

    select
        account_id,
        count(*) as forecast_opportunities,
        sum(squared_error) as forecast_squared_error
    from forecasts
    group by account_id

),

acquisition_costs as (

    select
        account_id,
        max({{ dbt.safe_cast('value', 'double') }}) as acquisition_cost
    from attributes
    where lower(attribute) = 'acquisition_cost'
    group by account_id

),

final as (

    select
        assignments.account_id,
        assignments.tier,
        assignments.territory_id,
        assignments.rep_id,
        coalesce(opportunity_measures.open_pipeline_amount, 0) as open_pipeline_amount,
        coalesce(opportunity_measures.closed_opportunities, 0) as closed_opportunities,
        coalesce(opportunity_measures.won_opportunities, 0) as won_opportunities,
        coalesce(opportunity_measures.won_amount, 0) as won_amount,
        coalesce(opportunity_measures.created_opportunity, 0) as created_opportunity,
        coalesce(activity_measures.touches, 0) as touches,
        coalesce(activity_measures.had_meeting, 0) as had_meeting,
        case when coalesce(features.persona_engaged_icp_personas_90d, 0) >= 2 then 1 else 0 end
            as has_2plus_icp_personas,
        coalesce(forecast_measures.forecast_opportunities, 0) as forecast_opportunities,
        forecast_measures.forecast_squared_error,
        -- Spent to acquire an account won in the window; NULL without an acquisition_cost column.
        case
            when coalesce(opportunity_measures.won_opportunities, 0) > 0 then acquisition_costs.acquisition_cost
        end as won_acquisition_cost,
        outcome_dating.closed_dates_complete
    from assignments
    cross join outcome_dating
    left join features on assignments.account_id = features.account_id
    left join opportunity_measures on assignments.account_id = opportunity_measures.account_id
    left join activity_measures on assignments.account_id = activity_measures.account_id
    left join forecast_measures on assignments.account_id = forecast_measures.account_id
    left join acquisition_costs on assignments.account_id = acquisition_costs.account_id

)

select * from final
