SELECT * FROM dag_runs WHERE id = $1
