-- A duplicate (dag_id, run_id) inserts nothing and returns no row. ?10: the user who
-- triggered it, if one did.
INSERT INTO dag_runs (dag_id, run_id, run_type, state, logical_date, data_interval_start,
                      data_interval_end, conf, version, queued_at, triggering_user_name)
VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7, ?8, ?9, ?10)
ON CONFLICT (dag_id, run_id) DO NOTHING
RETURNING *
