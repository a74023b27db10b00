-- Every task instance of a run packed into one JSON array of arrays, in id order. One row
-- instead of one per instance: deciding a wide run on every event is dominated by the
-- per-row cost otherwise. Column order matches `rows::PackedTaskInstance`.
SELECT COALESCE(json_group_array(json_array(
    id, run, dag_id, run_id, task_id, map_index, try_number, max_tries, state, queue, pool,
    pool_slots, priority_weight, operator, queued_at, start_date, end_date, next_retry_at,
    hostname, pid, worker_id, heartbeat_at
)), '[]')
FROM (SELECT * FROM task_instances WHERE run = ?1 ORDER BY id)
