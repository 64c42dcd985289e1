{% macro parse_timestamp(column) -%}
    {{ return(adapter.dispatch('parse_timestamp', 'territory')(column)) }}
{%- endmacro %}

{% macro duckdb__parse_timestamp(column) -%}
    {#- ISO 8601 first (a UTC offset is dropped, keeping the wall-clock time), then each format of
        var('timestamp_formats') in order; NULL when nothing matches. One try_strptime per format:
        coalesce stops at the first match, and a format list in one call is several times slower. -#}
    coalesce(
        try_cast({{ column }} as timestamp),
        {%- for fmt in var('timestamp_formats') %}
        try_strptime({{ column }}, '{{ fmt }}'){% if not loop.last %},{% endif %}
        {%- endfor %}
    )
{%- endmacro %}

{% macro default__parse_timestamp(column) -%}
    {{ exceptions.raise_compiler_error(
        "parse_timestamp has no implementation for adapter '" ~ adapter.type()
        ~ "': add a " ~ adapter.type() ~ "__parse_timestamp macro in dbt_project/macros/parse_timestamp.sql"
    ) }}
{%- endmacro %}
