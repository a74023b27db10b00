-- Finished runs as they happened, in one statement: one array per column. A stored
-- (dag_id, run_id) inserts nothing and returns no row.
INSERT INTO dag_runs (dag_id, run_id, run_type, state, logical_date, data_interval_start,
                      data_interval_end, conf, version, queued_at, start_date, end_date)
SELECT r.dag_id, r.run_id, r.run_type, r.state, r.logical_date, r.data_interval_start,
       r.data_interval_end, r.conf::jsonb, r.version, r.queued_at, r.start_date, r.end_date
FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
            $6::timestamptz[], $7::timestamptz[], $8::text[], $9::text[], $10::timestamptz[],
            $11::timestamptz[], $12::timestamptz[])
     AS r (dag_id, run_id, run_type, state, logical_date, data_interval_start,
           data_interval_end, conf, version, queued_at, start_date, end_date)
ON CONFLICT (dag_id, run_id) DO NOTHING
RETURNING id, dag_id, run_id
