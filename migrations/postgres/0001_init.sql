-- The whole schema of Updraft on Postgres.

CREATE TABLE dags (
    dag_id          TEXT PRIMARY KEY,
    fileloc         TEXT NOT NULL,
    is_paused       BOOLEAN NOT NULL DEFAULT FALSE,
    is_active       BOOLEAN NOT NULL DEFAULT TRUE,
    -- Hash of the file the current definition came from; a row in dag_versions.
    version         TEXT NOT NULL,
    last_parsed_at  TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);

-- Every definition a DAG ever had, so a run keeps the one it started with. Immutable.
-- The definition is kept as the exact JSON text serde wrote, so reading it back is one parse.
CREATE TABLE dag_versions (
    dag_id      TEXT NOT NULL REFERENCES dags (dag_id),
    version     TEXT NOT NULL,
    definition  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (dag_id, version)
);

CREATE TABLE import_errors (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    filename    TEXT NOT NULL UNIQUE,
    message     TEXT NOT NULL,
    timestamp   TIMESTAMPTZ NOT NULL
);

-- Runs reference their DAG by id only (no foreign key): a run's history must outlive any
-- change to the dags table, and the definition it ran is kept in dag_versions.
CREATE TABLE dag_runs (
    id                   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dag_id               TEXT NOT NULL,
    run_id               TEXT NOT NULL,
    run_type             TEXT NOT NULL,
    state                TEXT NOT NULL,
    logical_date         TIMESTAMPTZ,
    data_interval_start  TIMESTAMPTZ,
    data_interval_end    TIMESTAMPTZ,
    conf                 JSONB NOT NULL DEFAULT '{}',
    version              TEXT NOT NULL,
    queued_at            TIMESTAMPTZ NOT NULL,
    start_date           TIMESTAMPTZ,
    end_date             TIMESTAMPTZ,
    UNIQUE (dag_id, run_id)
);

CREATE INDEX dag_runs_state ON dag_runs (state, queued_at);
CREATE INDEX dag_runs_dag_state ON dag_runs (dag_id, state);
CREATE INDEX dag_runs_dag_logical_date ON dag_runs (dag_id, run_type, logical_date);

CREATE TABLE task_instances (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run              BIGINT NOT NULL REFERENCES dag_runs (id) ON DELETE CASCADE,
    dag_id           TEXT NOT NULL,
    run_id           TEXT NOT NULL,
    task_id          TEXT NOT NULL,
    map_index        INTEGER NOT NULL DEFAULT -1,
    try_number       BIGINT NOT NULL DEFAULT 0,
    max_tries        BIGINT NOT NULL DEFAULT 0,
    state            TEXT NOT NULL,
    queue            TEXT NOT NULL,
    pool             TEXT NOT NULL,
    pool_slots       BIGINT NOT NULL DEFAULT 1,
    priority_weight  BIGINT NOT NULL DEFAULT 1,
    operator         TEXT NOT NULL,
    queued_at        TIMESTAMPTZ,
    start_date       TIMESTAMPTZ,
    end_date         TIMESTAMPTZ,
    next_retry_at    TIMESTAMPTZ,
    hostname         TEXT,
    pid              BIGINT,
    worker_id        TEXT,
    heartbeat_at     TIMESTAMPTZ,
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
    run        BIGINT NOT NULL REFERENCES dag_runs (id) ON DELETE CASCADE,
    task_id    TEXT NOT NULL,
    map_index  INTEGER NOT NULL,
    key        TEXT NOT NULL,
    value      JSONB NOT NULL,
    timestamp  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run, task_id, map_index, key)
);

CREATE TABLE task_logs (
    ti          BIGINT NOT NULL REFERENCES task_instances (id) ON DELETE CASCADE,
    try_number  BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    timestamp   TIMESTAMPTZ NOT NULL,
    stream      TEXT NOT NULL,
    line        TEXT NOT NULL,
    PRIMARY KEY (ti, try_number, seq)
);

CREATE TABLE users (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL
);
