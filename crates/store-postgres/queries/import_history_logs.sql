-- Log lines of imported task instances, in one statement: one array per column.
INSERT INTO task_logs (ti, try_number, seq, timestamp, stream, line)
SELECT l.ti, l.try_number, l.seq, l.timestamp, l.stream, l.line
FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::timestamptz[], $5::text[], $6::text[])
     AS l (ti, try_number, seq, timestamp, stream, line)
