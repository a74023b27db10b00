-- The conditions every task-instance listing shares (its `{filter}`), on `ti` alone (an
-- instance carries its run's DAG and run ids), so no listing joins the runs: ?2 the run id,
-- ?3 run keys (JSON array, empty: any), ?4 the task id, ?5 a LIKE pattern of it, ?6 states,
-- ?7 map indexes (JSON arrays), ?8 1 for mapped instances only and 0 for unmapped ones, ?9
-- try numbers, ?10 pools and ?11 queues (JSON arrays).
(?2 IS NULL OR ti.run_id = ?2)
AND (json_array_length(?3) = 0 OR ti.run IN (SELECT value FROM json_each(?3)))
AND (?4 IS NULL OR ti.task_id = ?4)
AND (?5 IS NULL OR ti.task_id LIKE ?5)
AND (json_array_length(?6) = 0 OR ti.state IN (SELECT value FROM json_each(?6)))
AND (json_array_length(?7) = 0 OR ti.map_index IN (SELECT value FROM json_each(?7)))
AND (?8 IS NULL OR (ti.map_index >= 0) = ?8)
AND (json_array_length(?9) = 0 OR ti.try_number IN (SELECT value FROM json_each(?9)))
AND (json_array_length(?10) = 0 OR ti.pool IN (SELECT value FROM json_each(?10)))
AND (json_array_length(?11) = 0 OR ti.queue IN (SELECT value FROM json_each(?11)))
