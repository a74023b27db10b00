-- Children first, each counted (a cascade would delete them uncounted).
DELETE FROM task_logs
WHERE ti IN (SELECT id FROM task_instances WHERE run IN (SELECT value FROM json_each(?1)))
