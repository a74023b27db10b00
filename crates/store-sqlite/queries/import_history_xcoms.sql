-- XComs of imported task instances, in one statement: ?1 is a JSON array of [run, task_id,
-- map_index, key, value (JSON text), timestamp].
INSERT INTO xcom (run, task_id, map_index, key, value, timestamp)
SELECT x.value ->> 0, x.value ->> 1, x.value ->> 2, x.value ->> 3, x.value ->> 4,
       x.value ->> 5
FROM json_each(?1) AS x
