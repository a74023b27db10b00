-- Finished runs as they happened, in one statement: ?1 is a JSON array of [dag_id, run_id,
-- run_type, state, logical_date, data_interval_start, data_interval_end, conf (JSON text),
-- version, queued_at, start_date, end_date]. A stored (dag_id, run_id) inserts nothing and
-- returns no row. (`WHERE true` lets SQLite read ON CONFLICT after a SELECT.)
INSERT INTO dag_runs (dag_id, run_id, run_type, state, logical_date, data_interval_start,
                      data_interval_end, conf, version, queued_at, start_date, end_date)
SELECT r.value ->> 0, r.value ->> 1, r.value ->> 2, r.value ->> 3, r.value ->> 4,
       r.value ->> 5, r.value ->> 6, r.value ->> 7, r.value ->> 8, r.value ->> 9,
       r.value ->> 10, r.value ->> 11
FROM json_each(?1) AS r
WHERE true
ON CONFLICT (dag_id, run_id) DO NOTHING
RETURNING id, dag_id, run_id
