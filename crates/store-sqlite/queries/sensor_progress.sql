SELECT next_poke_at, first_poke_at, poke_count FROM task_instances WHERE id = ?1
