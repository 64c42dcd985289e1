{%- set tables = contract_tables() -%}

with

{% for table_name, columns in tables.items() %}
{{ table_name }}_rejected as (

    select
        '{{ table_name }}' as table_name,
        checked._source_file as file,
        checked._row_number as row_number,
        checked.reject_reason as reason,
        -- The raw text, untrimmed, so the row can be found and fixed in the export.
        {{ json_text('raw_rows', columns) }} as raw_values
    from {{ ref('stg_crm__' ~ table_name ~ '_checked') }} as checked
    inner join {{ source('raw', table_name) }} as raw_rows
        on checked._row_number = raw_rows._row_number
    where checked.reject_reason is not null

),

{% endfor %}
final as (

    {% for table_name in tables %}
    select
        table_name,
        file,
        row_number,
        reason,
        raw_values
    from {{ table_name }}_rejected
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

)

select * from final
