-- Blocking, not SKIP LOCKED: a second scheduler waits and then decides on what the first one
-- wrote, so no event is lost between them.
SELECT * FROM dag_runs WHERE id = $1 FOR UPDATE
