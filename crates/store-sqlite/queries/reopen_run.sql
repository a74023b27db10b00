-- A finished run whose task instances changed by hand: the scheduler decides it again.
UPDATE dag_runs SET state = ?2, end_date = NULL
WHERE id = ?1 AND state IN ('success', 'failed')
