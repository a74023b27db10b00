-- Mark success/failed by hand: the run's unfinished instances in $2 take state $3 and end now.
UPDATE task_instances SET
    state = $3,
    start_date = COALESCE(start_date, $4),
    end_date = $4,
    next_retry_at = NULL
WHERE run = $1 AND state = ANY($2::text[])
