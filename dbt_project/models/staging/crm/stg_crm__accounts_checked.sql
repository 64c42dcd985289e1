with

raw_accounts as (

    select
        _source_file,
        _row_number,
        account_id,
        account_name,
        industry,
        employees,
        annual_revenue,
        country,
        state,
        city,
        postal_code,
        latitude,
        longitude,
        technologies,
        parent_account_id,
        owner_rep_id,
        created_at
    from {{ source('raw', 'accounts') }}

),

cleaned as (

    select
        _source_file,
        _row_number,
        {{ clean_text('account_id') }} as account_id,
        {{ clean_text('account_name') }} as account_name,
        {{ clean_text('industry') }} as industry,
        {{ clean_text('employees') }} as employees,
        {{ clean_text('annual_revenue') }} as annual_revenue,
        {{ clean_text('country') }} as country,
        {{ clean_text('state') }} as state,
        {{ clean_text('city') }} as city,
        {{ clean_text('postal_code') }} as postal_code,
        {{ clean_text('latitude') }} as latitude,
        {{ clean_text('longitude') }} as longitude,
        {{ clean_text('technologies') }} as technologies,
        {{ clean_text('parent_account_id') }} as parent_account_id,
        {{ clean_text('owner_rep_id') }} as owner_rep_id,
        {{ clean_text('created_at') }} as created_at
    from raw_accounts

),

duplicate_rows as (

    {{ later_duplicate_rows(source('raw', 'accounts'), 'account_id') }}

),

final as (

    select
        _source_file,
        _row_number,
        account_id,
        account_name,
        lower(industry) as industry,
        {{ dbt.safe_cast('employees', 'double') }} as employees,
        {{ dbt.safe_cast('annual_revenue', 'double') }} as annual_revenue,
        country,
        state,
        city,
        postal_code,
        {{ dbt.safe_cast('latitude', 'double') }} as latitude,
        {{ dbt.safe_cast('longitude', 'double') }} as longitude,
        technologies,
        parent_account_id,
        owner_rep_id,
        {{ parse_timestamp('created_at') }} as created_at,
        coalesce(
            {{ reject_if_empty('account_id') }},
            {{ reject_if_not_number('employees') }},
            {{ reject_if_negative('employees') }},
            {{ reject_if_not_number('annual_revenue') }},
            {{ reject_if_negative('annual_revenue') }},
            {{ reject_if_not_number('latitude') }},
            {{ reject_if_out_of_range('latitude', -90, 90) }},
            {{ reject_if_not_number('longitude') }},
            {{ reject_if_out_of_range('longitude', -180, 180) }},
            {{ reject_if_not_date('created_at') }},
            {{ reject_if_duplicate('account_id', 'duplicate_rows') }}
        ) as reject_reason
    from cleaned

)

select * from final
