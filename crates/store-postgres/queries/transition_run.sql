-- Guarded by the state the scheduler saw. $4: the run starts now; $5: the run ends now.
UPDATE dag_runs SET
    state = $3,
    start_date = CASE WHEN $4 THEN COALESCE(start_date, $6) ELSE start_date END,
    end_date = CASE WHEN $5 THEN $6 ELSE end_date END
WHERE id = $1 AND state = $2
