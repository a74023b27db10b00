-- XComs of imported task instances, in one statement: one array per column.
INSERT INTO xcom (run, task_id, map_index, key, value, timestamp)
SELECT x.run, x.task_id, x.map_index, x.key, x.value::jsonb, x.timestamp
FROM UNNEST($1::bigint[], $2::text[], $3::integer[], $4::text[], $5::text[],
            $6::timestamptz[])
     AS x (run, task_id, map_index, key, value, timestamp)
