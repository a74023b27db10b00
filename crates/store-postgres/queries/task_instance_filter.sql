-- The conditions every task-instance listing shares (its `{filter}`), on `ti` alone (an
-- instance carries its run's DAG and run ids), so no listing joins the runs: $2 the run id,
-- $3 run keys (array, empty: any), $4 the task id, $5 an ILIKE pattern of it, $6 states, $7
-- map indexes (arrays), $8 1 for mapped instances only and 0 for unmapped ones, $9 try
-- numbers, $10 pools and $11 queues (arrays).
($2::text IS NULL OR ti.run_id = $2)
AND (cardinality($3::bigint[]) = 0 OR ti.run = ANY($3::bigint[]))
AND ($4::text IS NULL OR ti.task_id = $4)
AND ($5::text IS NULL OR ti.task_id ILIKE $5 ESCAPE '')
AND (cardinality($6::text[]) = 0 OR ti.state = ANY($6::text[]))
AND (cardinality($7::bigint[]) = 0 OR ti.map_index = ANY($7::bigint[]))
AND ($8::bigint IS NULL OR (ti.map_index >= 0) = ($8::bigint = 1))
AND (cardinality($9::bigint[]) = 0 OR ti.try_number = ANY($9::bigint[]))
AND (cardinality($10::text[]) = 0 OR ti.pool = ANY($10::text[]))
AND (cardinality($11::text[]) = 0 OR ti.queue = ANY($11::text[]))
