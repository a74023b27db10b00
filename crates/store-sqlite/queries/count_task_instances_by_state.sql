SELECT state, COUNT(*) AS n FROM task_instances GROUP BY state ORDER BY state
