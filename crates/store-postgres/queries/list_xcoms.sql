SELECT task_id, map_index, key, value, timestamp FROM xcom
WHERE run = $1 AND ($2::text IS NULL OR task_id = $2)
ORDER BY task_id, map_index, key
