-- Every line in one statement, numbered from $3 + 1 in the order given.
INSERT INTO task_logs (ti, try_number, seq, timestamp, stream, line)
SELECT $1, $2, $3 + l.n, l.timestamp, l.stream, l.line
FROM UNNEST($4::timestamptz[], $5::text[], $6::text[]) WITH ORDINALITY
     AS l (timestamp, stream, line, n)
