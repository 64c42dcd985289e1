{%- set as_of_date = var('as_of_date') -%}
{%- if as_of_date and not modules.re.match('^\d{4}-\d{2}-\d{2}$', as_of_date | string) -%}
    {{ exceptions.raise_compiler_error(
        "var as_of_date must be a date as YYYY-MM-DD or null, got '" ~ as_of_date ~ "'"
    ) }}
{%- endif -%}

with

events as (

    select occurred_at from {{ ref('stg_crm__engagement_events') }}

),

activities as (

    select occurred_at from {{ ref('stg_crm__activities') }}

),

opportunities as (

    select
        created_at,
        closed_at
    from {{ ref('stg_crm__opportunities') }}

),

observed_dates as (

    select occurred_at as observed_at from events
    union all
    select occurred_at as observed_at from activities
    union all
    select created_at as observed_at from opportunities
    union all
    select closed_at as observed_at from opportunities

),

final as (

    select
        coalesce(
            {% if as_of_date %}cast('{{ as_of_date }}' as date),{% endif %}
            cast(max(observed_at) as date),
            current_date
        ) as as_of_date
    from observed_dates

)

select * from final
