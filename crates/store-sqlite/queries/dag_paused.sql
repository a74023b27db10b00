-- Whether a run's DAG is paused, read inside schedule_run's transaction: a paused DAG's
-- runs are not decided. No row (the DAG is gone) reads as not paused.
SELECT is_paused FROM dags WHERE dag_id = ?1
