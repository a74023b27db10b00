DELETE FROM dags WHERE dag_id = ?1
