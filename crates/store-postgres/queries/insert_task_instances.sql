-- Every task instance of a new run in one statement: one array per column.
INSERT INTO task_instances (run, dag_id, run_id, task_id, map_index, try_number, max_tries,
                            state, queue, pool, pool_slots, priority_weight, operator)
SELECT $1, $2, $3, t.task_id, t.map_index, 0, t.max_tries, 'none', t.queue, t.pool,
       t.pool_slots, t.priority_weight, t.operator
FROM UNNEST($4::text[], $5::integer[], $6::bigint[], $7::text[], $8::text[], $9::bigint[],
            $10::bigint[], $11::text[])
     AS t (task_id, map_index, max_tries, queue, pool, pool_slots, priority_weight, operator)
