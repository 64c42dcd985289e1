{% macro clean_text(column) -%}
    {#- Exports pad values with spaces, tabs and line breaks; an empty value means "unknown". -#}
    nullif(trim({{ column }}, chr(32) || chr(9) || chr(10) || chr(13)), '')
{%- endmacro %}
