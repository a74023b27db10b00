DELETE FROM dag_runs WHERE id IN (SELECT value FROM json_each(?1))
