-- A hand-set state, guarded by the state read in the same transaction.
UPDATE task_instances SET
    state = $2,
    start_date = COALESCE(start_date, $3),
    end_date = $3,
    next_retry_at = NULL
WHERE id = $1 AND state = $4
RETURNING *
