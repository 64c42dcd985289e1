{% macro normalize_code(column) -%}
    {#- Codes such as event types and signal names become feature and join keys, so
        "Pricing Page-View" and "pricing_page_view" must be the same value. -#}
    nullif(trim(regexp_replace(lower({{ column }}), '[^\p{L}\p{N}]+', '_', 'g'), '_'), '')
{%- endmacro %}
