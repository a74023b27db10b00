SELECT queue AS state, COUNT(*) AS n FROM task_instances WHERE state = 'queued'
GROUP BY queue ORDER BY queue
