-- ?1 is a JSON array of task instance keys.
SELECT * FROM task_instances WHERE id IN (SELECT value FROM json_each(?1))
