with

raw_contacts as (

    select
        _source_file,
        _row_number,
        contact_id,
        account_id,
        title,
        email,
        created_at
    from {{ source('raw', 'contacts') }}

),

accounts as (

    select account_id from {{ ref('stg_crm__accounts') }}

),

cleaned as (

    select
        _source_file,
        _row_number,
        {{ clean_text('contact_id') }} as contact_id,
        {{ clean_text('account_id') }} as account_id,
        {{ clean_text('title') }} as title,
        {{ clean_text('email') }} as email,
        {{ clean_text('created_at') }} as created_at
    from raw_contacts

),

duplicate_rows as (

    {{ later_duplicate_rows(source('raw', 'contacts'), 'contact_id') }}

),

final as (

    select
        _source_file,
        _row_number,
        contact_id,
        account_id,
        title,
        lower(email) as email,
        {{ parse_timestamp('created_at') }} as created_at,
        coalesce(
            {{ reject_if_empty('contact_id') }},
            {{ reject_if_empty('account_id') }},
            {{ reject_if_not_date('created_at') }},
            {{ reject_if_duplicate('contact_id', 'duplicate_rows') }},
            {{ reject_if_unknown_account('accounts') }}
        ) as reject_reason
    from cleaned

)

select * from final
