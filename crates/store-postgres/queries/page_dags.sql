-- DAGs matching a listing's filter, one page in the order asked for, each with the newest
-- scheduled run's logical date (where its schedule stands). $1 DAG ids (array, empty: any),
-- $2 active and $3 paused (1 or 0, NULL: either), $4 an ILIKE pattern of the id, $5 owners
-- and $6 tags (arrays), $7 1 when the DAG must have every tag of $6 (else any), $8 whether
-- its file has an import error (1 or 0), $9 the state of its newest run; $10 the limit
-- (NULL: none), $11 the offset. Owner and tags are the version's generated columns (0010).
SELECT d.dag_id, d.fileloc, d.is_paused, d.is_active, d.version, d.last_parsed_at,
       (SELECT MAX(r.logical_date) FROM dag_runs r
        WHERE r.dag_id = d.dag_id AND r.run_type = 'scheduled') AS last_scheduled_logical_date
FROM dags d
WHERE (cardinality($1::text[]) = 0 OR d.dag_id = ANY($1::text[]))
  AND ($2::bigint IS NULL OR d.is_active = ($2::bigint = 1))
  AND ($3::bigint IS NULL OR d.is_paused = ($3::bigint = 1))
  AND ($4::text IS NULL OR d.dag_id ILIKE $4 ESCAPE '')
  AND ((cardinality($5::text[]) = 0 AND cardinality($6::text[]) = 0) OR EXISTS (
        SELECT 1 FROM dag_versions v
        WHERE v.dag_id = d.dag_id AND v.version = d.version
          AND (cardinality($5::text[]) = 0 OR v.owner = ANY($5::text[]))
          AND (cardinality($6::text[]) = 0
               OR ($7::bigint = 0 AND v.tags ?| $6::text[])
               OR ($7::bigint = 1 AND v.tags ?& $6::text[]))))
  AND ($8::bigint IS NULL
       OR EXISTS (SELECT 1 FROM import_errors e WHERE e.filename = d.fileloc) = ($8::bigint = 1))
  AND ($9::text IS NULL OR (SELECT r.state FROM dag_runs r WHERE r.dag_id = d.dag_id
                            ORDER BY r.queued_at DESC, r.id DESC LIMIT 1) = $9)
ORDER BY {order}
LIMIT $10 OFFSET $11
