-- Guarded by the running try: a late or duplicate finish matches no row. $5 is when the
-- next try may start (up_for_retry) or, for a sensor that poked on a worker and waits again
-- (up_for_reschedule), when its next poke is due; that poke is counted, and the first one
-- remembered (the claim set start_date when it began). $6, when set, is the try's pid, not
-- recorded yet.
UPDATE task_instances SET
    state = $3,
    end_date = CASE WHEN $3 = 'up_for_reschedule' THEN end_date ELSE $4 END,
    next_retry_at = CASE WHEN $3 = 'up_for_reschedule' THEN NULL ELSE $5 END,
    next_poke_at = CASE WHEN $3 = 'up_for_reschedule' THEN $5 ELSE NULL END,
    first_poke_at = CASE WHEN $3 = 'up_for_reschedule' THEN COALESCE(first_poke_at, start_date) ELSE first_poke_at END,
    poke_count = CASE WHEN $3 = 'up_for_reschedule' THEN poke_count + 1 ELSE poke_count END,
    pid = COALESCE($6, pid)
WHERE id = $1 AND try_number = $2 AND state = 'running'
RETURNING run, task_id, map_index
