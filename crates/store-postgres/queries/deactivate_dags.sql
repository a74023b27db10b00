-- $1 is an array of DAG ids.
UPDATE dags SET is_active = FALSE
WHERE dag_id = ANY($1)
