-- Log lines of imported task instances, in one statement: ?1 is a JSON array of [ti,
-- try_number, seq, timestamp, stream, line].
INSERT INTO task_logs (ti, try_number, seq, timestamp, stream, line)
SELECT l.value ->> 0, l.value ->> 1, l.value ->> 2, l.value ->> 3, l.value ->> 4,
       l.value ->> 5
FROM json_each(?1) AS l
