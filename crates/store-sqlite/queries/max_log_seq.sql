-- The write transaction (BEGIN IMMEDIATE) serializes appends, so the next numbers are free.
SELECT COALESCE(MAX(seq), 0) FROM task_logs WHERE ti = ?1 AND try_number = ?2
