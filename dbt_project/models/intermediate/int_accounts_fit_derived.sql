with

accounts as (

    select
        account_id,
        industry,
        employees,
        annual_revenue,
        country,
        state,
        parent_account_id
    from {{ ref('stg_crm__accounts') }}

),

technologies as (

    select account_id from {{ ref('account_technologies') }}

),

technology_counts as (

    select
        account_id,
        count(*) as technology_count
    from technologies
    group by account_id

),

child_counts as (

    select
        parent_account_id as account_id,
        count(*) as child_count
    from accounts
    where parent_account_id is not null
    group by parent_account_id

),

final as (

    select
        accounts.account_id,
        coalesce(accounts.industry, 'unknown') as fit_industry,
        case
            when accounts.employees is null then 'unknown'
            when accounts.employees < 10 then '1-9'
            when accounts.employees < 50 then '10-49'
            when accounts.employees < 250 then '50-249'
            when accounts.employees < 1000 then '250-999'
            when accounts.employees < 5000 then '1000-4999'
            else '5000+'
        end as fit_size_band,
        coalesce(accounts.state, accounts.country, 'unknown') as fit_region,
        -- log(1 + x): size effects are multiplicative, and zero stays defined.
        ln(1 + accounts.employees) as fit_log_employees,
        ln(1 + accounts.annual_revenue) as fit_log_annual_revenue,
        coalesce(technology_counts.technology_count, 0) as fit_technology_count,
        case when accounts.parent_account_id is not null then 1 else 0 end as fit_has_parent,
        coalesce(child_counts.child_count, 0) as fit_child_count
    from accounts
    left join technology_counts
        on accounts.account_id = technology_counts.account_id
    left join child_counts
        on accounts.account_id = child_counts.account_id

)

select * from final
