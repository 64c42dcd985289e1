-- Every input row is either accepted or rejected with a reason: nothing is dropped silently.
select
    table_name,
    file,
    input_rows,
    accepted_rows,
    rejected_rows
from {{ ref('input_row_counts') }}
where input_rows is distinct from accepted_rows + rejected_rows
