-- One poke of a waiting sensor, guarded by its state, try and poke count: two schedulers
-- poking the same sensor at once change it once, and none applies while its DAG is paused. ?4:
-- the state it moves to (up_for_reschedule to wait again, queued for a worker's poke, or a
-- finished state); ?5: now; ?6: the next poke when waiting; ?7: whether this was a poke
-- (counted, and the first one remembered) rather than a hand-over to a worker.
UPDATE task_instances SET
    state = ?4,
    poke_count = CASE WHEN ?7 THEN poke_count + 1 ELSE poke_count END,
    first_poke_at = CASE WHEN ?7 THEN COALESCE(first_poke_at, ?5) ELSE first_poke_at END,
    next_poke_at = ?6,
    start_date = COALESCE(start_date, ?5),
    end_date = CASE WHEN ?4 IN ('success', 'failed', 'skipped') THEN ?5 ELSE end_date END,
    queued_at = CASE WHEN ?4 = 'queued' THEN ?5 ELSE queued_at END,
    hostname = CASE WHEN ?4 = 'queued' THEN NULL ELSE hostname END,
    pid = CASE WHEN ?4 = 'queued' THEN NULL ELSE pid END,
    worker_id = CASE WHEN ?4 = 'queued' THEN NULL ELSE worker_id END,
    heartbeat_at = CASE WHEN ?4 = 'queued' THEN NULL ELSE heartbeat_at END
WHERE id = ?1 AND try_number = ?2 AND poke_count = ?3 AND state = 'up_for_reschedule'
  AND NOT EXISTS (SELECT 1 FROM dags d WHERE d.dag_id = task_instances.dag_id AND d.is_paused = 1)
RETURNING run
