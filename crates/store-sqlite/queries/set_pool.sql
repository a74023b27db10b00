INSERT INTO pools (name, slots, description) VALUES (?1, ?2, ?3)
ON CONFLICT (name) DO UPDATE SET slots = excluded.slots, description = excluded.description
