-- $1 is an array of task instance keys.
SELECT * FROM task_instances WHERE id = ANY($1)
