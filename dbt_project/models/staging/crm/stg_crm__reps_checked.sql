with

raw_reps as (

    select
        _source_file,
        _row_number,
        rep_id,
        name,
        role,
        region,
        segment,
        capacity_accounts,
        latitude,
        longitude,
        manager_id,
        start_date
    from {{ source('raw', 'reps') }}

),

cleaned as (

    select
        _source_file,
        _row_number,
        {{ clean_text('rep_id') }} as rep_id,
        {{ clean_text('name') }} as name,
        {{ clean_text('role') }} as role,
        {{ clean_text('region') }} as region,
        {{ clean_text('segment') }} as segment,
        {{ clean_text('capacity_accounts') }} as capacity_accounts,
        {{ clean_text('latitude') }} as latitude,
        {{ clean_text('longitude') }} as longitude,
        {{ clean_text('manager_id') }} as manager_id,
        {{ clean_text('start_date') }} as start_date
    from raw_reps

),

duplicate_rows as (

    {{ later_duplicate_rows(source('raw', 'reps'), 'rep_id') }}

),

final as (

    select
        _source_file,
        _row_number,
        rep_id,
        name,
        upper(role) as role,
        region,
        segment,
        {{ dbt.safe_cast('capacity_accounts', 'double') }} as capacity_accounts,
        {{ dbt.safe_cast('latitude', 'double') }} as latitude,
        {{ dbt.safe_cast('longitude', 'double') }} as longitude,
        manager_id,
        {{ parse_timestamp('start_date') }} as start_date,
        coalesce(
            {{ reject_if_empty('rep_id') }},
            {{ reject_if_not_number('capacity_accounts') }},
            {{ reject_if_negative('capacity_accounts') }},
            {{ reject_if_not_number('latitude') }},
            {{ reject_if_out_of_range('latitude', -90, 90) }},
            {{ reject_if_not_number('longitude') }},
            {{ reject_if_out_of_range('longitude', -180, 180) }},
            {{ reject_if_not_date('start_date') }},
            {{ reject_if_duplicate('rep_id', 'duplicate_rows') }}
        ) as reject_reason
    from cleaned

)

select * from final
