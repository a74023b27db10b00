INSERT INTO variables (key, val, description, is_encrypted) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (key) DO UPDATE SET
    val = excluded.val, description = excluded.description, is_encrypted = excluded.is_encrypted
