SELECT COUNT(*) FROM dag_runs WHERE dag_id = ?1 AND state = 'running'
