SELECT * FROM task_instances
WHERE (?1 IS NULL OR dag_id = ?1) AND (?2 IS NULL OR run_id = ?2)
ORDER BY run, id
