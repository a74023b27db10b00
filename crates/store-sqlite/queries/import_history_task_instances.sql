-- Finished task instances of imported runs, in one statement: ?1 is a JSON array of [run,
-- dag_id, run_id, task_id, map_index, try_number, max_tries, state, queue, pool, pool_slots,
-- priority_weight, operator, queued_at, start_date, end_date].
INSERT INTO task_instances (run, dag_id, run_id, task_id, map_index, try_number, max_tries,
                            state, queue, pool, pool_slots, priority_weight, operator,
                            queued_at, start_date, end_date)
SELECT t.value ->> 0, t.value ->> 1, t.value ->> 2, t.value ->> 3, t.value ->> 4,
       t.value ->> 5, t.value ->> 6, t.value ->> 7, t.value ->> 8, t.value ->> 9,
       t.value ->> 10, t.value ->> 11, t.value ->> 12, t.value ->> 13, t.value ->> 14,
       t.value ->> 15
FROM json_each(?1) AS t
ORDER BY t.key
RETURNING id, run, task_id, map_index
