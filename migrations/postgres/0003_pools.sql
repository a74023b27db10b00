-- Pools limit how many slots running task instances of a pool may take at once.
CREATE TABLE pools (
    name         TEXT PRIMARY KEY,
    slots        BIGINT NOT NULL,
    description  TEXT
);
INSERT INTO pools (name, slots, description) VALUES ('default_pool', 128, 'Default pool');

-- Claims count the running slots of each pool.
CREATE INDEX task_instances_pool ON task_instances (state, pool);
