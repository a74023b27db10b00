-- Who triggered a run, when a user did (Airflow's dag_run.triggering_user_name).
ALTER TABLE dag_runs ADD COLUMN triggering_user_name TEXT;
