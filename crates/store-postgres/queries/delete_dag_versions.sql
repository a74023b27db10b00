DELETE FROM dag_versions WHERE dag_id = $1
