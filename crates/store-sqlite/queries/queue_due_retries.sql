-- A new try starts: count it, forget the previous try's process and dates. A paused DAG's
-- retries wait until it is unpaused.
UPDATE task_instances SET
    state = 'queued',
    try_number = try_number + 1,
    queued_at = ?1,
    start_date = NULL,
    end_date = NULL,
    next_retry_at = NULL,
    hostname = NULL,
    pid = NULL,
    worker_id = NULL,
    heartbeat_at = NULL,
    next_poke_at = NULL,
    first_poke_at = NULL,
    poke_count = 0
WHERE state = 'up_for_retry' AND next_retry_at <= ?1
  AND NOT EXISTS (SELECT 1 FROM dags d WHERE d.dag_id = task_instances.dag_id AND d.is_paused = 1)
RETURNING run
