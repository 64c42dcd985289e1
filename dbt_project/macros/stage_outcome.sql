{% macro stage_outcome(stage) -%}
    {#- CRMs spell stages many ways ("Closed Won", "won", "6 - Closed Lost"); only the won/lost
        words are reliable, and everything else is still in progress. -#}
    case
        when lower({{ stage }}) like '%won%' then 'won'
        when lower({{ stage }}) like '%lost%' then 'lost'
        else 'open'
    end
{%- endmacro %}
