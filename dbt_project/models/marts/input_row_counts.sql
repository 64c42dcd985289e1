{%- set tables = contract_tables() -%}

with

manifest as (

    select
        table_name,
        source_file,
        present,
        input_rows
    from {{ source('raw', 'load_manifest') }}

),

{% for table_name in tables %}
{{ table_name }}_counts as (

    select
        '{{ table_name }}' as table_name,
        count(case when reject_reason is null then 1 end) as accepted_rows,
        count(reject_reason) as rejected_rows
    from {{ ref('stg_crm__' ~ table_name ~ '_checked') }}

),

{% endfor %}
checked_counts as (

    {% for table_name in tables %}
    select
        table_name,
        accepted_rows,
        rejected_rows
    from {{ table_name }}_counts
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

final as (

    select
        checked_counts.table_name,
        manifest.source_file as file,
        coalesce(manifest.present, false) as present,
        -- An absent file read no rows; a table missing from the manifest stays NULL and fails the
        -- reconciliation test instead of passing unnoticed.
        coalesce(manifest.input_rows, case when not manifest.present then 0 end) as input_rows,
        checked_counts.accepted_rows,
        checked_counts.rejected_rows
    from checked_counts
    left join manifest
        on checked_counts.table_name = manifest.table_name

)

select * from final
