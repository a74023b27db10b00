-- Task instances of the DAG ?1 matching a listing's filter (`task_instance_filter`), one
-- page in the order asked for, found through the DAG's runs; ?12 the limit (NULL: none), ?13
-- the offset.
SELECT ti.* FROM task_instances ti
WHERE ti.run IN (SELECT r.id FROM dag_runs r WHERE r.dag_id = ?1) AND {filter}
ORDER BY {order}
LIMIT COALESCE(?12, -1) OFFSET ?13
