-- The day's sales by region (used by sql_report.yaml).
select region, amount
from daily_sales
where day = :day
order by region;
