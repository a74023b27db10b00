-- Sensor instances between pokes, of one run ($1) or of every run ($1 NULL), soonest first,
-- each saying whether its DAG is paused (then it waits unpoked until the unpause).
SELECT task_instances.*,
       EXISTS (SELECT 1 FROM dags d WHERE d.dag_id = task_instances.dag_id AND d.is_paused)
           AS dag_paused
FROM task_instances
WHERE state = 'up_for_reschedule' AND ($1 IS NULL OR run = $1)
ORDER BY next_poke_at, id
