-- Runs of the DAGs $2 (an array of ids) matching a listing's filter (`run_filter`), one page
-- in the order asked for, found by DAG; $23 the limit (NULL: none), $24 the offset.
SELECT * FROM dag_runs
WHERE dag_id = ANY($2::text[]) AND {filter}
ORDER BY {order}
LIMIT $23 OFFSET $24
