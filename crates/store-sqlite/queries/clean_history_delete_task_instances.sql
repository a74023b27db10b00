DELETE FROM task_instances WHERE run IN (SELECT value FROM json_each(?1))
