-- Sensors between pokes wait in state up_for_reschedule, holding no worker slot.
-- next_poke_at: when the next poke is due. first_poke_at: the first poke of the current try,
-- so that `timeout` is measured from it across reschedules. poke_count: pokes of this try,
-- for exponential backoff and the log. A new try (queued with try_number + 1) resets them.
ALTER TABLE task_instances ADD COLUMN next_poke_at INTEGER;
ALTER TABLE task_instances ADD COLUMN first_poke_at INTEGER;
ALTER TABLE task_instances ADD COLUMN poke_count INTEGER NOT NULL DEFAULT 0;

-- The sensor loop loads waiting sensors by state.
CREATE INDEX task_instances_poke ON task_instances (state, next_poke_at);
