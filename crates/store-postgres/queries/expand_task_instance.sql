-- A mapped task's placeholder becomes map index 0, guarded: only while still unexpanded.
UPDATE task_instances SET map_index = 0
WHERE id = $1 AND map_index = -1 AND state = 'none'
