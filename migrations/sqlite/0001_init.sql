-- The whole schema of Updraft on SQLite.
--
-- Timestamps are INTEGER microseconds since the Unix epoch (UTC), so ordering and comparison
-- are plain integer comparisons. Booleans are 0/1. JSON is stored as TEXT.

CREATE TABLE dags (
    dag_id          TEXT PRIMARY KEY NOT NULL,
    fileloc         TEXT NOT NULL,
    is_paused       INTEGER NOT NULL DEFAULT 0,
    is_active       INTEGER NOT NULL DEFAULT 1,
    -- Hash of the file the current definition came from; a row in dag_versions.
    version         TEXT NOT NULL,
    last_parsed_at  INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);

-- Every definition a DAG ever had, so a run keeps the one it started with. Immutable.
CREATE TABLE dag_versions (
    dag_id      TEXT NOT NULL REFERENCES dags (dag_id),
    version     TEXT NOT NULL,
    definition  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (dag_id, version)
);

CREATE TABLE import_errors (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    filename    TEXT NOT NULL UNIQUE,
    message     TEXT NOT NULL,
    timestamp   INTEGER NOT NULL
);

-- Runs reference their DAG by id only (no foreign key): a run's history must outlive any
-- change to the dags table, and the definition it ran is kept in dag_versions.
CREATE TABLE dag_runs (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    dag_id               TEXT NOT NULL,
    run_id               TEXT NOT NULL,
    run_type             TEXT NOT NULL,
    state                TEXT NOT NULL,
    logical_date         INTEGER,
    data_interval_start  INTEGER,
    data_interval_end    INTEGER,
    conf                 TEXT NOT NULL DEFAULT '{}',
    version              TEXT NOT NULL,
    queued_at            INTEGER NOT NULL,
    start_date           INTEGER,
    end_date             INTEGER,
    UNIQUE (dag_id, run_id)
);

CREATE INDEX dag_runs_state ON dag_runs (state, queued_at);
CREATE INDEX dag_runs_dag_state ON dag_runs (dag_id, state);
CREATE INDEX dag_runs_dag_logical_date ON dag_runs (dag_id, run_type, logical_date);

CREATE TABLE task_instances (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    run              INTEGER NOT NULL REFERENCES dag_runs (id) ON DELETE CASCADE,
    dag_id           TEXT NOT NULL,
    run_id           TEXT NOT NULL,
    task_id          TEXT NOT NULL,
    map_index        INTEGER NOT NULL DEFAULT -1,
    try_number       INTEGER NOT NULL DEFAULT 0,
    max_tries        INTEGER NOT NULL DEFAULT 0,
    state            TEXT NOT NULL,
    queue            TEXT NOT NULL,
    pool             TEXT NOT NULL,
    pool_slots       INTEGER NOT NULL DEFAULT 1,
    priority_weight  INTEGER NOT NULL DEFAULT 1,
    operator         TEXT NOT NULL,
    queued_at        INTEGER,
    start_date       INTEGER,
    end_date         INTEGER,
    next_retry_at    INTEGER,
    hostname         TEXT,
    pid              INTEGER,
    worker_id        TEXT,
    heartbeat_at     INTEGER,
    UNIQUE (run, task_id, map_index)
);

-- Claims: queued instances of some queues, highest priority first, oldest first.
CREATE INDEX task_instances_claim
    ON task_instances (state, queue, priority_weight DESC, queued_at, id);
-- Zombies (running, by heartbeat) and due retries (up_for_retry, by next_retry_at).
CREATE INDEX task_instances_heartbeat ON task_instances (state, heartbeat_at);
CREATE INDEX task_instances_retry ON task_instances (state, next_retry_at);
CREATE INDEX task_instances_worker ON task_instances (worker_id, state);

CREATE TABLE xcom (
    run        INTEGER NOT NULL REFERENCES dag_runs (id) ON DELETE CASCADE,
    task_id    TEXT NOT NULL,
    map_index  INTEGER NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    timestamp  INTEGER NOT NULL,
    PRIMARY KEY (run, task_id, map_index, key)
);

CREATE TABLE task_logs (
    ti          INTEGER NOT NULL REFERENCES task_instances (id) ON DELETE CASCADE,
    try_number  INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    timestamp   INTEGER NOT NULL,
    stream      TEXT NOT NULL,
    line        TEXT NOT NULL,
    PRIMARY KEY (ti, try_number, seq)
);

CREATE TABLE users (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    username       TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL,
    created_at     INTEGER NOT NULL
);
