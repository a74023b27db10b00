-- Runs of the DAG $1 matching a listing's filter (`run_filter`), one page in the order asked
-- for, along the DAG's indexes; $23 the limit (NULL: none), $24 the offset.
SELECT * FROM dag_runs
WHERE dag_id = $1::text AND {filter}
ORDER BY {order}
LIMIT $23 OFFSET $24
