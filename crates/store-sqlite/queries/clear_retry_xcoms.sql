-- A retried try starts with its own earlier XComs cleared (as in Airflow): runs just before
-- queue_due_retries, in its transaction, for the same instances (none of a paused DAG).
DELETE FROM xcom WHERE EXISTS (
    SELECT 1 FROM task_instances ti
    WHERE ti.state = 'up_for_retry' AND ti.next_retry_at <= ?1
      AND ti.run = xcom.run AND ti.task_id = xcom.task_id AND ti.map_index = xcom.map_index
      AND NOT EXISTS (SELECT 1 FROM dags d WHERE d.dag_id = ti.dag_id AND d.is_paused = 1)
)
