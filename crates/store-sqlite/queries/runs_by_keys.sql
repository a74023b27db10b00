-- ?1 is a JSON array of run keys.
SELECT * FROM dag_runs WHERE id IN (SELECT value FROM json_each(?1))
