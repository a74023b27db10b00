-- Guarded by the running try: a late or duplicate finish matches no row.
UPDATE task_instances SET
    state = $3,
    end_date = $4,
    next_retry_at = $5
WHERE id = $1 AND try_number = $2 AND state = 'running'
RETURNING run, task_id, map_index
