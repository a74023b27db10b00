UPDATE task_instances SET pid = $3
WHERE id = $1 AND try_number = $2 AND state = 'running'
