{% macro duckdb__safe_cast(field, type) -%}
    {#- dbt's default safe_cast is a plain cast, which fails the whole model on one bad value;
        staging needs NULL instead so the row can be rejected with a reason. -#}
    try_cast({{ field }} as {{ type }})
{%- endmacro %}
