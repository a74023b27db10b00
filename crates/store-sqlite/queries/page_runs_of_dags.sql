-- Runs of the DAGs ?2 (a JSON array of ids) matching a listing's filter (`run_filter`), one
-- page in the order asked for, found by DAG; ?23 the limit (NULL: none), ?24 the offset.
SELECT * FROM dag_runs
WHERE dag_id IN (SELECT value FROM json_each(?2)) AND {filter}
ORDER BY {order}
LIMIT COALESCE(?23, -1) OFFSET ?24
