{% macro clean_text(column) -%}
    {#- Exports pad values with spaces, and an empty value means "unknown". Only spaces are trimmed:
        trimming a character set is several times slower on large files, and CSV readers already drop
        the carriage returns of Windows line ends. -#}
    nullif(trim({{ column }}), '')
{%- endmacro %}
