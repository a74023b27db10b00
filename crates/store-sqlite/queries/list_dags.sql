-- With the newest scheduled run's logical date, where each DAG's schedule stands.
SELECT dag_id, fileloc, is_paused, is_active, version, last_parsed_at,
       (SELECT MAX(r.logical_date) FROM dag_runs r
        WHERE r.dag_id = dags.dag_id AND r.run_type = 'scheduled') AS last_scheduled_logical_date
FROM dags
ORDER BY dag_id
