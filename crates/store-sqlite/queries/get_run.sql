SELECT * FROM dag_runs WHERE dag_id = ?1 AND run_id = ?2
