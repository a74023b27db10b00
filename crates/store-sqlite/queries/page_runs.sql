-- Runs of any DAG matching a listing's filter (`run_filter`), one page in the order asked
-- for; ?1 (one DAG) is page_dag_runs's, ?23 the limit (NULL: none), ?24 the offset.
SELECT * FROM dag_runs
WHERE {filter}
ORDER BY {order}
LIMIT COALESCE(?23, -1) OFFSET ?24
