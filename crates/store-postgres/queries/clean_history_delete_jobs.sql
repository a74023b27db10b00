-- Heartbeats older than $1 (components that stopped: a restarted worker beats under a new id),
-- but each component's newest, so that health still says when it last beat.
DELETE FROM jobs
WHERE heartbeat_at < $1
  AND heartbeat_at < (SELECT MAX(k.heartbeat_at) FROM jobs k WHERE k.component = jobs.component)
