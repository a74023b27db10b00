-- $1 is an array of run keys.
SELECT * FROM dag_runs WHERE id = ANY($1)
