UPDATE dags SET is_paused = ?2 WHERE dag_id = ?1
