{% macro contract_tables() -%}
    {#- The contract files and their columns (required, then optional) as ml/contract.py lists them;
        the raw tables hold exactly these columns plus _row_number and _source_file. -#}
    {{ return({
        'accounts': [
            'account_id', 'account_name', 'industry', 'employees', 'annual_revenue', 'country', 'state',
            'city', 'postal_code', 'latitude', 'longitude', 'technologies', 'parent_account_id',
            'owner_rep_id', 'created_at',
        ],
        'opportunities': ['opportunity_id', 'account_id', 'stage', 'created_at', 'closed_at', 'amount'],
        'reps': [
            'rep_id', 'name', 'role', 'region', 'segment', 'capacity_accounts', 'latitude', 'longitude',
            'manager_id', 'start_date',
        ],
        'contacts': ['contact_id', 'account_id', 'title', 'email', 'created_at'],
        'engagement_events': [
            'account_id', 'event_type', 'occurred_at', 'event_id', 'contact_id', 'source', 'topic', 'value',
        ],
        'account_signals': ['account_id', 'signal', 'value', 'layer', 'observed_at'],
        'activities': ['account_id', 'occurred_at', 'activity_id', 'rep_id', 'activity_type'],
    }) }}
{%- endmacro %}
