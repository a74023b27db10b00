-- One guarded transition decided by the scheduler. $4: a new try starts (the new state is
-- `queued`, or `up_for_reschedule` for a sensor the scheduler pokes): count it, forget the
-- previous try's process and pokes; $5: the try starts now (running or
-- finished); $6: the instance ends now (a finished state).
UPDATE task_instances SET
    state = $3,
    try_number = CASE WHEN $4 THEN try_number + 1 ELSE try_number END,
    queued_at = CASE WHEN $4 THEN $7 ELSE queued_at END,
    start_date = CASE WHEN $4 THEN NULL WHEN $5 THEN COALESCE(start_date, $7) ELSE start_date END,
    end_date = CASE WHEN $4 THEN NULL WHEN $6 THEN $7 ELSE end_date END,
    next_retry_at = CASE WHEN $4 THEN NULL ELSE next_retry_at END,
    hostname = CASE WHEN $4 THEN NULL ELSE hostname END,
    pid = CASE WHEN $4 THEN NULL ELSE pid END,
    worker_id = CASE WHEN $4 THEN NULL ELSE worker_id END,
    heartbeat_at = CASE WHEN $4 THEN NULL ELSE heartbeat_at END,
    next_poke_at = CASE WHEN $3 = 'up_for_reschedule' THEN $7 WHEN $4 THEN NULL ELSE next_poke_at END,
    first_poke_at = CASE WHEN $4 THEN NULL ELSE first_poke_at END,
    poke_count = CASE WHEN $4 THEN 0 ELSE poke_count END
WHERE id = $1 AND state = $2
