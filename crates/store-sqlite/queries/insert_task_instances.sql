-- Every task instance of a new run in one statement: ?4 is a JSON array of
-- [task_id, map_index, max_tries, queue, pool, pool_slots, priority_weight, operator].
INSERT INTO task_instances (run, dag_id, run_id, task_id, map_index, try_number, max_tries,
                            state, queue, pool, pool_slots, priority_weight, operator)
SELECT ?1, ?2, ?3, t.value ->> 0, t.value ->> 1, 0, t.value ->> 2, 'none', t.value ->> 3,
       t.value ->> 4, t.value ->> 5, t.value ->> 6, t.value ->> 7
FROM json_each(?4) AS t
ORDER BY t.key
