INSERT INTO jobs (component, id, hostname, heartbeat_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (component, id) DO UPDATE SET hostname = excluded.hostname,
    heartbeat_at = excluded.heartbeat_at
