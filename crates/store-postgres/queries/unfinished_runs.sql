SELECT id FROM dag_runs WHERE state IN ('queued', 'running') ORDER BY queued_at, id
