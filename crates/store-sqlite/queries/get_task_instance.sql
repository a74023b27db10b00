SELECT * FROM task_instances WHERE id = ?1
