with

kpis as (

    select
        grain_value,
        {{ kpi_columns() | join(',\n        ') }}
    from {{ ref('int_kpis_rolled_up') }}
    where grain = 'tier'

),

final as (

    select
        grain_value as tier,
        {{ kpi_columns() | join(',\n        ') }}
    from kpis

)

select * from final
