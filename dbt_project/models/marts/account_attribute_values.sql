with

attributes as (

    select
        _row_number,
        attribute,
        value
    from {{ source('raw', 'account_attributes') }}

),

accounts as (

    select
        _row_number,
        account_id
    from {{ ref('stg_crm__accounts') }}

),

cleaned as (

    select
        _row_number,
        {{ clean_text('attribute') }} as attribute,
        {{ clean_text('value') }} as value
    from attributes

),

final as (

    -- Joined on the file row, not the id, so a value follows exactly the account row that was accepted.
    select
        accounts.account_id,
        cleaned.attribute,
        cleaned.value
    from cleaned
    inner join accounts
        on cleaned._row_number = accounts._row_number
    where cleaned.value is not null

)

select * from final
