-- Sensor instances between pokes, of one run (?1) or of every run (?1 NULL), soonest first.
SELECT * FROM task_instances
WHERE state = 'up_for_reschedule' AND (?1 IS NULL OR run = ?1)
ORDER BY next_poke_at, id
