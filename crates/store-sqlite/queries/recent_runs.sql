-- The newest ?2 runs (by queued_at) of each DAG of ?1 (a JSON array of ids), in one read,
-- each DAG's along its index (0010); by DAG, newest first.
SELECT r.* FROM json_each(?1) AS d
JOIN dag_runs r ON r.id IN (
    SELECT x.id FROM dag_runs x WHERE x.dag_id = d.value
    ORDER BY x.queued_at DESC, x.id DESC
    LIMIT ?2)
ORDER BY r.dag_id, r.queued_at DESC, r.id DESC
