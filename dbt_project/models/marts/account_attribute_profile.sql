{#- Extra account columns the scoring run may learn from. A column is left out when the policy excludes it
    (scoring.exclude_attributes) or when it is an identifier: a row number (whole numbers, one per account,
    nearly consecutive) or a text that differs on nearly every account (names, addresses, web sites). Such
    a column can only teach the model which rows were won, never why. -#}
{%- set excluded = var('exclude_attributes') | map('lower') | list -%}
{%- set min_accounts = 30 -%}

with

attribute_values as (

    select
        attribute,
        value,
        {{ dbt.safe_cast('value', 'double') }} as number
    from {{ ref('account_attribute_values') }}

),

profiled as (

    select
        attribute,
        count(*) as accounts_with_value,
        count(distinct value) as distinct_values,
        avg(case when number is not null then 1.0 else 0.0 end) as numeric_share,
        bool_and(number is not null and number = round(number)) as all_whole_numbers,
        max(number) - min(number) + 1 as number_span
    from attribute_values
    group by attribute

),

final as (

    select
        attribute,
        cast(accounts_with_value as {{ dbt.type_bigint() }}) as accounts_with_value,
        cast(distinct_values as {{ dbt.type_bigint() }}) as distinct_values,
        case
            {%- if excluded %}
            when lower(attribute) in ({% for name in excluded %}'{{ name | replace("'", "''") }}'{% if not loop.last %}, {% endif %}{% endfor %})
                then 'excluded by the policy (scoring.exclude_attributes)'
            {%- endif %}
            when accounts_with_value >= {{ min_accounts }} and all_whole_numbers
                and distinct_values = accounts_with_value and number_span <= 1.1 * accounts_with_value
                then 'identifier: a row number (consecutive whole numbers, one per account)'
            when accounts_with_value >= {{ min_accounts }} and numeric_share < 0.95
                and distinct_values >= 0.95 * accounts_with_value
                then 'identifier: a different text on nearly every account'
        end as excluded_reason
    from profiled

)

select
    attribute,
    accounts_with_value,
    distinct_values,
    excluded_reason is null as used_as_feature,
    excluded_reason
from final
