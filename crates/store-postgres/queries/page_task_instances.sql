-- Task instances of any DAG and run matching a listing's filter (`task_instance_filter`),
-- one page in the order asked for; $1 is NULL here (page_dag_task_instances takes one DAG),
-- $12 the limit (NULL: none), $13 the offset.
SELECT ti.* FROM task_instances ti
WHERE ($1::text IS NULL OR ti.dag_id = $1) AND {filter}
ORDER BY {order}
LIMIT $12 OFFSET $13
