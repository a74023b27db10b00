-- The write transaction (BEGIN IMMEDIATE) already holds the database's write lock.
SELECT * FROM dag_runs WHERE id = ?1
