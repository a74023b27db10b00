-- Back to "no status" so the scheduler runs it again; a running or queued try is left alone.
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
WHERE id = $1 AND run = $2 AND state NOT IN ('running', 'queued')
RETURNING *
