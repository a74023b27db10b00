SELECT p.name, p.slots, p.description,
       COALESCE(SUM(CASE WHEN t.state = 'running' THEN t.pool_slots END), 0) AS running_slots,
       COALESCE(SUM(CASE WHEN t.state = 'queued' THEN t.pool_slots END), 0) AS queued_slots
FROM pools AS p
LEFT JOIN task_instances AS t ON t.pool = p.name AND t.state IN ('running', 'queued')
GROUP BY p.name, p.slots, p.description
ORDER BY p.name
