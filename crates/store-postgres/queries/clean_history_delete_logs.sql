-- Children first, each counted (a cascade would delete them uncounted). The instances' keys
-- are read first as one array, so the log lines are found by their key's index rather than by
-- hashing the whole table against the batch's instances.
DELETE FROM task_logs
WHERE ti = ANY(ARRAY(SELECT id FROM task_instances WHERE run = ANY($1)))
