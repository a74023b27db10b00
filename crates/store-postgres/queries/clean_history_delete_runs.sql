DELETE FROM dag_runs WHERE id = ANY($1)
