SELECT MIN(next_retry_at) FROM task_instances WHERE state = 'up_for_retry'
