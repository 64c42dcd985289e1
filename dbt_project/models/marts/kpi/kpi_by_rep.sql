with

kpis as (

    select
        grain_value,
        {{ kpi_columns() | join(',\n        ') }}
    from {{ ref('int_kpis_rolled_up') }}
    where grain = 'rep_id'

),

final as (

    select
        grain_value as rep_id,
        {{ kpi_columns() | join(',\n        ') }}
    from kpis

)

select * from final
