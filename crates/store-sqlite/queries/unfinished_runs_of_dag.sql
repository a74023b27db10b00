-- The runs an unpause names in its events: they waited while the DAG was paused.
SELECT id FROM dag_runs WHERE dag_id = ?1 AND state IN ('queued', 'running') ORDER BY queued_at, id
