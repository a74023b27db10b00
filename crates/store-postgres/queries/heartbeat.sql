-- Rows are locked in key order, as a batch of finishes takes them, so that a heartbeat and a
-- batch of ends of the same worker's tries never deadlock.
UPDATE task_instances SET heartbeat_at = $2
WHERE id IN (
    SELECT id FROM task_instances
    WHERE worker_id = $1 AND state = 'running'
    ORDER BY id
    FOR UPDATE
)
RETURNING id, try_number
