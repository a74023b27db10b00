UPDATE task_instances SET heartbeat_at = $2
WHERE worker_id = $1 AND state = 'running'
RETURNING id, try_number
