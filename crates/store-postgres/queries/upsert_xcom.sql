INSERT INTO xcom (run, task_id, map_index, key, value, timestamp)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (run, task_id, map_index, key) DO UPDATE SET
    value = excluded.value,
    timestamp = excluded.timestamp
