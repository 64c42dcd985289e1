{%- set grains = ['tier', 'territory_id', 'rep_id'] -%}

with

accounts as (

    select
        account_id,
        tier,
        territory_id,
        rep_id,
        open_pipeline_amount,
        closed_opportunities,
        won_opportunities,
        won_amount,
        created_opportunity,
        touches,
        had_meeting,
        has_2plus_icp_personas,
        forecast_opportunities,
        forecast_squared_error,
        won_acquisition_cost,
        closed_dates_complete
    from {{ ref('int_accounts_kpi_measured') }}

),

outcome_dating as (

    select coalesce(bool_and(closed_dates_complete), true) as closed_dates_complete
    from accounts

),

activities as (

    select
        account_id,
        rep_id as touching_rep_id
    from {{ ref('int_activities_windowed') }}

),

sla as (

    select
        rep_id,
        tier,
        met,
        breached
    from {{ source('pipeline', 'monitor_sla') }}

),

run_as_of as (

    select as_of_date from {{ ref('run_as_of') }}

),

rep_territories as (

    select distinct
        rep_id,
        territory_id
    from accounts

),

touches as (

    select
        accounts.tier,
        accounts.territory_id,
        accounts.rep_id,
        activities.touching_rep_id
    from activities
    inner join accounts on activities.account_id = accounts.account_id

),

sla_by_territory as (

    select
        sla.rep_id,
        sla.tier,
        rep_territories.territory_id,
        sla.met,
        sla.breached
    from sla
    left join rep_territories on sla.rep_id = rep_territories.rep_id

),

{% for grain in grains %}
accounts_by_{{ grain }} as (

    select
        '{{ grain }}' as grain,
        {{ grain }} as grain_value,
        count(*) as accounts,
        sum(open_pipeline_amount) as open_pipeline_amount,
        sum(closed_opportunities) as closed_opportunities,
        sum(won_opportunities) as won_opportunities,
        sum(won_amount) as won_amount,
        sum(had_meeting) as accounts_with_meeting,
        sum(has_2plus_icp_personas) as accounts_2plus_icp_personas,
        sum(case when has_2plus_icp_personas = 1 then created_opportunity else 0 end)
            as created_2plus_icp_personas,
        sum(1 - has_2plus_icp_personas) as accounts_under_2_icp_personas,
        sum(case when has_2plus_icp_personas = 0 then created_opportunity else 0 end)
            as created_under_2_icp_personas,
        sum(forecast_opportunities) as forecast_opportunities,
        sum(forecast_squared_error) as forecast_squared_error,
        sum(won_acquisition_cost) as acquisition_cost
    from accounts
    group by {{ grain }}

),

touches_by_{{ grain }} as (

    select
        {{ grain }} as grain_value,
        count(*) as touches,
        count(distinct touching_rep_id) as touching_reps
    from touches
    group by {{ grain }}

),

sla_by_{{ grain }} as (

    select
        {{ grain }} as grain_value,
        sum(met) + sum(breached) as sla_judged,
        sum(met) as sla_met
    from sla_by_territory
    group by {{ grain }}

),

rolled_{{ grain }} as (

    select
        accounts_by_{{ grain }}.*,
        coalesce(touches_by_{{ grain }}.touches, 0) as touches,
        coalesce(touches_by_{{ grain }}.touching_reps, 0) as touching_reps,
        coalesce(sla_by_{{ grain }}.sla_judged, 0) as sla_judged,
        coalesce(sla_by_{{ grain }}.sla_met, 0) as sla_met
    from accounts_by_{{ grain }}
    left join touches_by_{{ grain }} on accounts_by_{{ grain }}.grain_value = touches_by_{{ grain }}.grain_value
    left join sla_by_{{ grain }} on accounts_by_{{ grain }}.grain_value = sla_by_{{ grain }}.grain_value

),

{% endfor %}
rolled as (

    {% for grain in grains %}
    select * from rolled_{{ grain }}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

final as (

    select
        rolled.grain,
        rolled.grain_value,
        cast(rolled.accounts as {{ dbt.type_bigint() }}) as accounts,
        rolled.open_pipeline_amount,
        rolled.open_pipeline_amount / rolled.accounts as pipeline_per_account,
        cast(rolled.closed_opportunities as {{ dbt.type_bigint() }}) as closed_opportunities,
        cast(rolled.won_opportunities as {{ dbt.type_bigint() }}) as won_opportunities,
        rolled.won_opportunities * 1.0 / nullif(rolled.closed_opportunities, 0) as win_rate,
        cast(rolled.accounts_with_meeting as {{ dbt.type_bigint() }}) as accounts_with_meeting,
        rolled.accounts_with_meeting * 1.0 / rolled.accounts as meeting_rate,
        cast(rolled.accounts_2plus_icp_personas as {{ dbt.type_bigint() }}) as accounts_2plus_icp_personas,
        rolled.created_2plus_icp_personas * 1.0 / nullif(rolled.accounts_2plus_icp_personas, 0)
            as opportunity_creation_rate_2plus_icp_personas,
        cast(rolled.accounts_under_2_icp_personas as {{ dbt.type_bigint() }}) as accounts_under_2_icp_personas,
        rolled.created_under_2_icp_personas * 1.0 / nullif(rolled.accounts_under_2_icp_personas, 0)
            as opportunity_creation_rate_under_2_icp_personas,
        cast(rolled.touches as {{ dbt.type_bigint() }}) as touches,
        cast(rolled.touching_reps as {{ dbt.type_bigint() }}) as touching_reps,
        rolled.touches * 1.0 / nullif(rolled.touching_reps, 0) as touches_per_rep,
        cast(rolled.sla_judged as {{ dbt.type_bigint() }}) as sla_judged,
        cast(rolled.sla_met as {{ dbt.type_bigint() }}) as sla_met,
        rolled.sla_met * 1.0 / nullif(rolled.sla_judged, 0) as sla_compliance,
        cast(rolled.forecast_opportunities as {{ dbt.type_bigint() }}) as forecast_opportunities,
        rolled.forecast_squared_error / nullif(rolled.forecast_opportunities, 0) as forecast_brier,
        rolled.won_amount,
        rolled.acquisition_cost,
        -- Months of won revenue (amounts read as annual contract value) that repay the acquisition cost.
        rolled.acquisition_cost / nullif(rolled.won_amount / 12.0, 0) as cac_payback_months,
        run_as_of.as_of_date,
        {{ var('kpi_window_days') }} as window_days,
        -- The window won and lost outcomes were counted in; NULL when close dates are missing and every
        -- outcome counts (see int_accounts_kpi_measured).
        case when outcome_dating.closed_dates_complete then {{ var('kpi_window_days') }} end
            as outcome_window_days
    from rolled
    cross join run_as_of
    cross join outcome_dating

)

select * from final
