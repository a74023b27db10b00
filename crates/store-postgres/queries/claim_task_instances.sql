-- SKIP LOCKED: concurrent claimers each take different rows instead of waiting on each other.
-- Locking re-checks `state = 'queued'` on the newest row version, so a row claimed and
-- committed meanwhile is not taken again. $4 is an array of queue names.
WITH picked AS (
    SELECT id FROM task_instances
    WHERE state = 'queued' AND queue = ANY($4)
    ORDER BY priority_weight DESC, queued_at ASC, id ASC
    LIMIT $5
    FOR UPDATE SKIP LOCKED
)
UPDATE task_instances AS t SET
    state = 'running',
    start_date = $1,
    heartbeat_at = $1,
    hostname = $2,
    worker_id = $3
FROM picked
WHERE t.id = picked.id AND t.state = 'queued'
RETURNING t.*
