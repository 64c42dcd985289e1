with

accounts as (

    select
        account_id,
        technologies
    from {{ ref('stg_crm__accounts') }}
    where technologies is not null

),

listed as (

    select
        account_id,
        unnest(string_split(technologies, ';')) as technology
    from accounts

),

cleaned as (

    select
        account_id,
        lower({{ clean_text('technology') }}) as technology
    from listed

),

final as (

    select distinct
        account_id,
        technology
    from cleaned
    where technology is not null

)

select * from final
