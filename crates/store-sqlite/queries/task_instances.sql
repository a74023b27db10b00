SELECT * FROM task_instances WHERE run = ?1 ORDER BY id
