SELECT task_id, map_index, key, value, timestamp FROM xcom
WHERE run = ?1 AND (?2 IS NULL OR task_id = ?2)
ORDER BY task_id, map_index, key
