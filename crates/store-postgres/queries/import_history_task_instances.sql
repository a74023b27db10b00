-- Finished task instances of imported runs, in one statement: one array per column.
INSERT INTO task_instances (run, dag_id, run_id, task_id, map_index, try_number, max_tries,
                            state, queue, pool, pool_slots, priority_weight, operator,
                            queued_at, start_date, end_date)
SELECT t.run, t.dag_id, t.run_id, t.task_id, t.map_index, t.try_number, t.max_tries, t.state,
       t.queue, t.pool, t.pool_slots, t.priority_weight, t.operator, t.queued_at,
       t.start_date, t.end_date
FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::integer[], $6::bigint[],
            $7::bigint[], $8::text[], $9::text[], $10::text[], $11::bigint[], $12::bigint[],
            $13::text[], $14::timestamptz[], $15::timestamptz[], $16::timestamptz[])
     AS t (run, dag_id, run_id, task_id, map_index, try_number, max_tries, state, queue, pool,
           pool_slots, priority_weight, operator, queued_at, start_date, end_date)
RETURNING id, run, task_id, map_index
