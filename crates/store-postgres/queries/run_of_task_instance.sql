SELECT run FROM task_instances WHERE id = $1
