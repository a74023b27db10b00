-- Siblings 1 … $2−1 of an expanded placeholder ($1), copying its routing and retry settings.
INSERT INTO task_instances (run, dag_id, run_id, task_id, map_index, try_number, max_tries,
                            state, queue, pool, pool_slots, priority_weight, operator)
SELECT ti.run, ti.dag_id, ti.run_id, ti.task_id, idx.i, 0, ti.max_tries, 'none', ti.queue,
       ti.pool, ti.pool_slots, ti.priority_weight, ti.operator
FROM task_instances AS ti, generate_series(1, $2 - 1) AS idx (i)
WHERE ti.id = $1
