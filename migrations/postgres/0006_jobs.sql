-- Heartbeats of long-running components (scheduler, worker), for the health endpoint.
CREATE TABLE jobs (
    component     TEXT NOT NULL,
    id            TEXT NOT NULL,
    hostname      TEXT NOT NULL,
    heartbeat_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (component, id)
);
