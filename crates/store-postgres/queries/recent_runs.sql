-- The newest $2 runs (by queued_at) of each DAG of $1 (an array of ids), in one read, each
-- DAG's along its index (0010); by DAG, newest first.
SELECT r.* FROM unnest($1::text[]) AS d (dag_id)
CROSS JOIN LATERAL (
    SELECT * FROM dag_runs x WHERE x.dag_id = d.dag_id
    ORDER BY x.queued_at DESC, x.id DESC
    LIMIT $2) AS r
ORDER BY r.dag_id, r.queued_at DESC, r.id DESC
