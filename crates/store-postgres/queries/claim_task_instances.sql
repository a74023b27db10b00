-- Runs after lock_pools in the same transaction, so claimers count pool slots one at a time;
-- the `state = 'queued'` guard keeps a row claimed meanwhile from being taken again. $4 is an
-- array of queue names. Pools: instances are taken in priority order while their pool has
-- free slots (its slots minus those of its running instances); a pool that does not exist
-- does not limit.
WITH free AS (
    SELECT p.name, p.slots - COALESCE((
        SELECT SUM(r.pool_slots) FROM task_instances AS r
        WHERE r.pool = p.name AND r.state = 'running'
    ), 0) AS slots
    FROM pools AS p
),
candidates AS (
    SELECT q.id, q.pool, q.priority_weight, q.queued_at,
           SUM(q.pool_slots) OVER (
               PARTITION BY q.pool ORDER BY q.priority_weight DESC, q.queued_at ASC, q.id ASC
               ROWS UNBOUNDED PRECEDING
           ) AS needed
    FROM (
        -- Only the head of the queue is weighed against the pools: sorting every queued
        -- instance on every claim made wide fan-outs pay per claim for the whole queue. An
        -- instance further back waits until the head drains, which it does as slots free.
        SELECT * FROM task_instances AS q
        WHERE q.state = 'queued' AND q.queue = ANY($4)
        ORDER BY q.priority_weight DESC, q.queued_at ASC, q.id ASC
        LIMIT $5 + 256
    ) AS q
),
picked AS (
    SELECT c.id FROM candidates AS c LEFT JOIN free AS f ON f.name = c.pool
    WHERE f.name IS NULL OR c.needed <= f.slots
    ORDER BY c.priority_weight DESC, c.queued_at ASC, c.id ASC
    LIMIT $5
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
