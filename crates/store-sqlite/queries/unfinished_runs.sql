-- The runs a scheduler decides: unfinished, of DAGs that are not paused.
SELECT id FROM dag_runs r
WHERE r.state IN ('queued', 'running')
  AND NOT EXISTS (SELECT 1 FROM dags d WHERE d.dag_id = r.dag_id AND d.is_paused = 1)
ORDER BY r.queued_at, r.id
