-- Back to "no status" so the scheduler runs it again. A running try's worker sees the change
-- and stops its process; the finish's guard (state and try number) then refuses its end.
UPDATE task_instances SET
    state = 'none',
    max_tries = $3,
    queued_at = NULL,
    start_date = NULL,
    end_date = NULL,
    next_retry_at = NULL,
    hostname = NULL,
    pid = NULL,
    worker_id = NULL,
    heartbeat_at = NULL
WHERE id = $1 AND run = $2 AND state <> 'none'
RETURNING *
