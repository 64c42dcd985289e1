{#- Each macro returns a human-readable reason naming the column, or NULL when the check passes.
    Models coalesce them in check order, so a rejected row carries its first problem. Arguments are
    columns of cleaned text (see clean_text). -#}

{% macro quoted(column) -%}
    '''' || {{ column }} || ''''
{%- endmacro %}

{% macro reject_if_empty(column) -%}
    case when {{ column }} is null then 'empty {{ column }}' end
{%- endmacro %}

{% macro reject_if_not_number(column) -%}
    {#- NaN and infinity parse as doubles but are no use as features. -#}
    case
        when {{ column }} is not null and not coalesce(isfinite({{ dbt.safe_cast(column, 'double') }}), false)
            then '{{ column }} is not a number: ' || {{ quoted(column) }}
    end
{%- endmacro %}

{% macro reject_if_negative(column) -%}
    case when {{ dbt.safe_cast(column, 'double') }} < 0 then '{{ column }} is negative' end
{%- endmacro %}

{% macro reject_if_out_of_range(column, low, high) -%}
    case
        when {{ dbt.safe_cast(column, 'double') }} not between {{ low }} and {{ high }}
            then '{{ column }} out of range'
    end
{%- endmacro %}

{% macro reject_if_not_date(column) -%}
    case
        when {{ column }} is not null and {{ parse_timestamp(column) }} is null
            then '{{ column }} is not a date: ' || {{ quoted(column) }}
    end
{%- endmacro %}

{% macro later_duplicate_rows(relation, key) -%}
    {#- _row_number of the rows of a raw relation whose cleaned key already appeared on an earlier row:
        the first row of a key is kept, so the outcome never depends on scan order. It reads the raw
        table itself, two columns only: ranking whole rows is many times slower, and a second reference
        to the model's import CTE would make DuckDB materialise it and lose its compression. -#}
    select ranked._row_number
    from (
        select
            _row_number,
            row_number() over (partition by {{ clean_text(key) }} order by _row_number) as key_rank
        from {{ relation }}
        where {{ clean_text(key) }} is not null
    ) as ranked
    where ranked.key_rank > 1
{%- endmacro %}

{% macro reject_if_duplicate(column, duplicate_rows) -%}
    {#- duplicate_rows names a CTE built with later_duplicate_rows. -#}
    case
        when _row_number in (select {{ duplicate_rows }}._row_number from {{ duplicate_rows }})
            then 'duplicate {{ column }} ' || {{ quoted(column) }}
    end
{%- endmacro %}

{% macro reject_if_unknown_account(accepted_accounts) -%}
    {#- Child rows must point at an accepted account; the argument names a relation or CTE with the
        accepted account_id values (never NULL, so NOT IN is safe). -#}
    case
        when account_id not in (select {{ accepted_accounts }}.account_id from {{ accepted_accounts }})
            then
                case
                    -- Name the real cause when the account exists but its own row was rejected.
                    when account_id in (
                        select rejected_accounts.account_id
                        from {{ ref('stg_crm__accounts_checked') }} as rejected_accounts
                        where rejected_accounts.reject_reason is not null
                    )
                        then 'account_id ' || {{ quoted('account_id') }} || ' was rejected in the accounts file'
                    else 'unknown account_id ' || {{ quoted('account_id') }}
                end
    end
{%- endmacro %}
