SELECT seq, timestamp, stream, line FROM task_logs
WHERE ti = $1 AND try_number = $2 AND seq > $3
ORDER BY seq
LIMIT $4
