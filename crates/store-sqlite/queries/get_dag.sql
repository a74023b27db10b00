SELECT dag_id, fileloc, is_paused, is_active, version, last_parsed_at
FROM dags
WHERE dag_id = ?1
