{% macro json_text(relation, columns) -%}
    {#- A JSON object text of the given columns, keys in the given order, for showing a raw row. -#}
    cast(to_json(struct_pack(
        {%- for column in columns %}
        "{{ column }}" := {{ relation }}."{{ column }}"{% if not loop.last %},{% endif %}
        {%- endfor %}
    )) as varchar)
{%- endmacro %}
