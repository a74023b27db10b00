-- ?3 is the limit, NULL for none (SQLite reads a negative limit as none).
SELECT * FROM dag_runs
WHERE (?1 IS NULL OR dag_id = ?1)
  AND (?2 IS NULL OR state = ?2)
ORDER BY queued_at DESC, id DESC
LIMIT COALESCE(?3, -1) OFFSET ?4
