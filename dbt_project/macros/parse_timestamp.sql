{% macro parse_timestamp(column) -%}
    {{ return(adapter.dispatch('parse_timestamp', 'territory')(column)) }}
{%- endmacro %}

{% macro duckdb__parse_timestamp(column) -%}
    {#- ISO 8601 first (YYYY-MM-DD, optionally with a time; a UTC offset is dropped, keeping the
        wall-clock time), then each format of var('timestamp_formats') in order; NULL when nothing
        matches. A failed parse costs about ten successful ones, so each attempt is guarded by a cheap
        test it needs to pass (the format's separators are all in the text): at tens of millions of
        rows this keeps non-ISO files from tripling the staging time. -#}
    coalesce(
        case when {{ column }} like '____-%' then try_cast({{ column }} as timestamp) end,
        {%- for fmt in var('timestamp_formats') %}
        {%- set separators = modules.re.sub('%.', '', fmt) | replace(' ', '') | unique | list %}
        case
            when {% for separator in separators %}{{ column }} like '%{{ separator }}%'{% if not loop.last %} and {% endif %}{% endfor %}
            {%- if not separators %}true{% endif %}
                then try_strptime({{ column }}, '{{ fmt }}')
        end{% if not loop.last %},{% endif %}
        {%- endfor %}
    )
{%- endmacro %}

{% macro default__parse_timestamp(column) -%}
    {{ exceptions.raise_compiler_error(
        "parse_timestamp has no implementation for adapter '" ~ adapter.type()
        ~ "': add a " ~ adapter.type() ~ "__parse_timestamp macro in dbt_project/macros/parse_timestamp.sql"
    ) }}
{%- endmacro %}
