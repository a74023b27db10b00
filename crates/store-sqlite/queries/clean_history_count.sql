-- What deleting the runs ?1 (a JSON array of keys) would take with them, for a dry run.
SELECT
    (SELECT COUNT(*) FROM task_instances WHERE run IN (SELECT value FROM json_each(?1)))
        AS task_instances,
    (SELECT COUNT(*) FROM task_logs WHERE ti IN (
        SELECT id FROM task_instances WHERE run IN (SELECT value FROM json_each(?1))))
        AS task_logs,
    (SELECT COUNT(*) FROM xcom WHERE run IN (SELECT value FROM json_each(?1))) AS xcom
