-- A DAG seen in a parsed file: active again, at this version. The paused flag is only set on
-- insert, so an existing DAG keeps what users chose.
INSERT INTO dags (dag_id, fileloc, is_paused, is_active, version, last_parsed_at, created_at)
VALUES (?1, ?2, ?3, 1, ?4, ?5, ?5)
ON CONFLICT (dag_id) DO UPDATE SET
    fileloc = excluded.fileloc,
    is_active = 1,
    version = excluded.version,
    last_parsed_at = excluded.last_parsed_at
