-- ?1 is a JSON array of DAG ids.
UPDATE dags SET is_active = 0
WHERE dag_id IN (SELECT value FROM json_each(?1))
