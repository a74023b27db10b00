-- Every line in one statement, numbered from ?3 + 1 in the order given: ?4 is a JSON array of
-- [timestamp, stream, line].
INSERT INTO task_logs (ti, try_number, seq, timestamp, stream, line)
SELECT ?1, ?2, ?3 + l.key + 1, l.value ->> 0, l.value ->> 1, l.value ->> 2
FROM json_each(?4) AS l
