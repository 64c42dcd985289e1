-- rejected_rows must list every rejected row, so its count per table matches input_row_counts.
{{ config(meta={'dagster': {'ref': {'name': 'rejected_rows'}}}) }}

with

listed as (

    select
        table_name,
        count(*) as listed_rows
    from {{ ref('rejected_rows') }}
    group by table_name

),

counted as (

    select
        table_name,
        rejected_rows
    from {{ ref('input_row_counts') }}

)

select
    counted.table_name,
    counted.rejected_rows,
    listed.listed_rows
from counted
left join listed
    on counted.table_name = listed.table_name
where coalesce(listed.listed_rows, 0) <> counted.rejected_rows
