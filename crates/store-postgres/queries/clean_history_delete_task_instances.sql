DELETE FROM task_instances WHERE run = ANY($1)
