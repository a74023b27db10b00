-- Task instances, XComs and logs go with their runs (ON DELETE CASCADE).
DELETE FROM dag_runs WHERE dag_id = $1
