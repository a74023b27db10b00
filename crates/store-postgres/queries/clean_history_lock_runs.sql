-- Of the candidate runs $2, those clean_history_candidates still lets go for the cutoff $1,
-- locked in key order inside the batch's write transaction: a run reopened meanwhile (its
-- lock is taken first, as schedule_run takes it), or one that became protected, is kept. The
-- same conditions as there.
SELECT r.id FROM dag_runs AS r
WHERE r.id = ANY($2)
  AND r.state IN ('success', 'failed')
  AND COALESCE(r.end_date, r.queued_at) < $1
  AND
    -- each DAG's newest scheduled run: where its cron schedule stands
    NOT (r.run_type = 'scheduled' AND r.logical_date >= (
        SELECT MAX(s.logical_date) FROM dag_runs s
        WHERE s.dag_id = r.dag_id AND s.run_type = 'scheduled'))
    AND (r.logical_date IS NULL OR (
        -- its newest run by logical date: the previous run of its next one (depends_on_past)
        r.logical_date < (SELECT MAX(n.logical_date) FROM dag_runs n WHERE n.dag_id = r.dag_id)
        -- the run just before an unfinished one, whose depends_on_past reads it
        AND NOT EXISTS (
            SELECT 1 FROM dag_runs AS u
            WHERE u.dag_id = r.dag_id AND u.state IN ('queued', 'running')
              AND u.logical_date > r.logical_date
              AND r.logical_date = (
                  SELECT MAX(m.logical_date) FROM dag_runs m
                  WHERE m.dag_id = u.dag_id AND m.logical_date < u.logical_date))))
ORDER BY r.id
FOR UPDATE OF r
