-- The earliest retry to wake for: a paused DAG's retries wait for the unpause.
SELECT MIN(next_retry_at) FROM task_instances ti
WHERE ti.state = 'up_for_retry'
  AND NOT EXISTS (SELECT 1 FROM dags d WHERE d.dag_id = ti.dag_id AND d.is_paused)
