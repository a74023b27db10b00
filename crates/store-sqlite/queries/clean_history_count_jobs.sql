-- Heartbeats clean_history_delete_jobs would delete, for a dry run.
SELECT COUNT(*) FROM jobs
WHERE heartbeat_at < ?1
  AND heartbeat_at < (SELECT MAX(k.heartbeat_at) FROM jobs k WHERE k.component = jobs.component)
