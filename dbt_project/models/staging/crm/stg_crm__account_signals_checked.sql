with

raw_account_signals as (

    select
        _source_file,
        _row_number,
        account_id,
        layer,
        signal,
        value,
        observed_at
    from {{ source('raw', 'account_signals') }}

),

accounts as (

    select account_id from {{ ref('stg_crm__accounts') }}

),

cleaned as (

    select
        _source_file,
        _row_number,
        {{ clean_text('account_id') }} as account_id,
        -- Most signal exports describe the account itself, so an unlabelled signal is a fit signal.
        coalesce(lower({{ clean_text('layer') }}), 'fit') as layer,
        {{ normalize_code('signal') }} as signal,
        {{ clean_text('value') }} as value,
        {{ clean_text('observed_at') }} as observed_at
    from raw_account_signals

),

final as (

    select
        _source_file,
        _row_number,
        account_id,
        layer,
        signal,
        {{ dbt.safe_cast('value', 'double') }} as value,
        -- A value that is no number is a category of the signal (a last activity, a rating band).
        case when {{ dbt.safe_cast('value', 'double') }} is null then value end as value_text,
        {{ parse_timestamp('observed_at') }} as observed_at,
        coalesce(
            {{ reject_if_empty('account_id') }},
            {{ reject_if_empty('signal') }},
            {{ reject_if_empty('value') }},
            -- NaN and infinity parse as numbers but are no use as features.
            case
                when not isfinite({{ dbt.safe_cast('value', 'double') }})
                    then 'value is not a finite number: ' || {{ quoted('value') }}
            end,
            case
                when layer not in ('fit', 'engagement', 'persona')
                    then 'layer is not fit, engagement or persona: ' || {{ quoted('layer') }}
            end,
            {{ reject_if_not_date('observed_at') }},
            {{ reject_if_unknown_account('accounts') }}
        ) as reject_reason
    from cleaned

)

select * from final
