SELECT state, COUNT(*) AS n FROM dag_runs GROUP BY state ORDER BY state
