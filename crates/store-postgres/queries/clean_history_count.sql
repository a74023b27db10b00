-- What deleting the runs $1 would take with them, for a dry run (log lines found as
-- clean_history_delete_logs finds them).
SELECT
    (SELECT COUNT(*) FROM task_instances WHERE run = ANY($1)) AS task_instances,
    (SELECT COUNT(*) FROM task_logs
     WHERE ti = ANY(ARRAY(SELECT id FROM task_instances WHERE run = ANY($1)))) AS task_logs,
    (SELECT COUNT(*) FROM xcom WHERE run = ANY($1)) AS xcom
