{% macro kpi_columns() -%}
    {#- The metric columns every KPI mart carries after its key, in order (documented in _kpi__models.yml). -#}
    {{ return([
        'accounts', 'open_pipeline_amount', 'pipeline_per_account',
        'closed_opportunities', 'won_opportunities', 'win_rate',
        'accounts_with_meeting', 'meeting_rate',
        'accounts_2plus_icp_personas', 'opportunity_creation_rate_2plus_icp_personas',
        'accounts_under_2_icp_personas', 'opportunity_creation_rate_under_2_icp_personas',
        'touches', 'touching_reps', 'touches_per_rep',
        'sla_judged', 'sla_met', 'sla_compliance',
        'forecast_opportunities', 'forecast_brier',
        'won_amount', 'acquisition_cost', 'cac_payback_months',
        'as_of_date', 'window_days', 'outcome_window_days',
    ]) }}
{%- endmacro %}
