-- Runs inside BEGIN IMMEDIATE, so no other claimer sees these rows as queued. ?4 is a JSON
-- array of queue names.
UPDATE task_instances SET
    state = 'running',
    start_date = ?1,
    heartbeat_at = ?1,
    hostname = ?2,
    worker_id = ?3
WHERE id IN (
    SELECT id FROM task_instances
    WHERE state = 'queued' AND queue IN (SELECT value FROM json_each(?4))
    ORDER BY priority_weight DESC, queued_at ASC, id ASC
    LIMIT ?5
)
RETURNING *
