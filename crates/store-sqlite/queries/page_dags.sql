-- DAGs matching a listing's filter, one page in the order asked for, each with the newest
-- scheduled run's logical date (where its schedule stands). ?1 DAG ids (JSON array, empty:
-- any), ?2 active and ?3 paused (1 or 0, NULL: either), ?4 a LIKE pattern of the id, ?5
-- owners and ?6 tags (JSON arrays), ?7 1 when the DAG must have every tag of ?6 (else any),
-- ?8 whether its file has an import error (1 or 0), ?9 the state of its newest run; ?10 the
-- limit (NULL: none), ?11 the offset. Owner and tags are the version's columns (0010).
SELECT d.dag_id, d.fileloc, d.is_paused, d.is_active, d.version, d.last_parsed_at,
       (SELECT MAX(r.logical_date) FROM dag_runs r
        WHERE r.dag_id = d.dag_id AND r.run_type = 'scheduled') AS last_scheduled_logical_date
FROM dags d
WHERE (json_array_length(?1) = 0 OR d.dag_id IN (SELECT value FROM json_each(?1)))
  AND (?2 IS NULL OR d.is_active = ?2)
  AND (?3 IS NULL OR d.is_paused = ?3)
  AND (?4 IS NULL OR d.dag_id LIKE ?4)
  AND ((json_array_length(?5) = 0 AND json_array_length(?6) = 0) OR EXISTS (
        SELECT 1 FROM dag_versions v
        WHERE v.dag_id = d.dag_id AND v.version = d.version
          AND (json_array_length(?5) = 0 OR v.owner IN (SELECT value FROM json_each(?5)))
          AND (json_array_length(?6) = 0
               OR (?7 = 0 AND EXISTS (SELECT 1 FROM json_each(v.tags) t
                                      WHERE t.value IN (SELECT value FROM json_each(?6))))
               OR (?7 = 1 AND NOT EXISTS (SELECT 1 FROM json_each(?6) w
                                          WHERE w.value NOT IN (SELECT t.value
                                                                FROM json_each(v.tags) t))))))
  AND (?8 IS NULL OR EXISTS (SELECT 1 FROM import_errors e WHERE e.filename = d.fileloc) = ?8)
  AND (?9 IS NULL OR (SELECT r.state FROM dag_runs r WHERE r.dag_id = d.dag_id
                      ORDER BY r.queued_at DESC, r.id DESC LIMIT 1) = ?9)
ORDER BY {order}
LIMIT COALESCE(?10, -1) OFFSET ?11
