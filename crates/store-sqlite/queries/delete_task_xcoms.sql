DELETE FROM xcom WHERE run = ?1 AND task_id = ?2 AND map_index = ?3
