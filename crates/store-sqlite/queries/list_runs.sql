-- ?3 is the limit, -1 for none.
SELECT * FROM dag_runs
WHERE (?1 IS NULL OR dag_id = ?1)
  AND (?2 IS NULL OR state = ?2)
ORDER BY queued_at DESC, id DESC
LIMIT ?3 OFFSET ?4
