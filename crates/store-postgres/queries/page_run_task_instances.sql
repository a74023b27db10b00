-- Task instances of the runs $3 (an array of keys) matching a listing's filter
-- (`task_instance_filter`), one page in the order asked for, found by run; $1 the DAG id
-- (NULL: any), $12 the limit (NULL: none), $13 the offset.
SELECT ti.* FROM task_instances ti
WHERE ti.run = ANY($3::bigint[]) AND ($1::text IS NULL OR ti.dag_id = $1)
  AND {filter}
ORDER BY {order}
LIMIT $12 OFFSET $13
