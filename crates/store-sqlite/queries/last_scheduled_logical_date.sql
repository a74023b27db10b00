SELECT MAX(logical_date) FROM dag_runs WHERE dag_id = ?1 AND run_type = 'scheduled'
