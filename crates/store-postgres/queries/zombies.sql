SELECT * FROM task_instances
WHERE state = 'running' AND heartbeat_at < $1
ORDER BY id
