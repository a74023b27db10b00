-- Task instances, XComs and logs go with the run (ON DELETE CASCADE).
DELETE FROM dag_runs WHERE id = ?1
