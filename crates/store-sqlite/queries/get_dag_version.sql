SELECT definition FROM dag_versions WHERE dag_id = ?1 AND version = ?2
