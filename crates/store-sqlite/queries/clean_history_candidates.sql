-- Runs `db clean` may delete, read outside any write transaction, one batch at a time: the
-- next ?3 finished runs after the key ?2 that ended before ?1 (without an end: were made
-- before ?1), by key, each with whether it may go. Kept: each DAG's newest scheduled run, its
-- newest run by logical date, and the run just before each unfinished run by logical date.
-- clean_history_lock_runs checks the same again inside the batch's transaction.
-- Hints, so that a batch costs its own size and not the table's: the runs are walked by key
-- from the last batch's (the order wanted, so LIMIT stops early) rather than filtered by a
-- state index and sorted; u takes the DAG's few unfinished runs by state.
SELECT r.id, COALESCE(
    -- each DAG's newest scheduled run: where its cron schedule stands
    NOT (r.run_type = 'scheduled' AND r.logical_date >= (
        SELECT MAX(s.logical_date) FROM dag_runs s
        WHERE s.dag_id = r.dag_id AND s.run_type = 'scheduled'))
    AND (r.logical_date IS NULL OR (
        -- its newest run by logical date: the previous run of its next one (depends_on_past)
        r.logical_date < (SELECT MAX(n.logical_date) FROM dag_runs n WHERE n.dag_id = r.dag_id)
        -- the run just before an unfinished one, whose depends_on_past reads it
        AND NOT EXISTS (
            SELECT 1 FROM dag_runs AS u INDEXED BY dag_runs_dag_state
            WHERE u.dag_id = r.dag_id AND u.state IN ('queued', 'running')
              AND u.logical_date > r.logical_date
              AND r.logical_date = (
                  SELECT MAX(m.logical_date) FROM dag_runs m
                  WHERE m.dag_id = u.dag_id AND m.logical_date < u.logical_date)))),
    false) AS deletable
FROM (
    SELECT id, dag_id, run_type, logical_date FROM dag_runs NOT INDEXED
    WHERE id > ?2
      AND state IN ('success', 'failed')
      AND COALESCE(end_date, queued_at) < ?1
    ORDER BY id
    LIMIT ?3
) AS r
ORDER BY r.id
