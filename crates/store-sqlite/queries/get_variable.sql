SELECT key, val, description, is_encrypted FROM variables WHERE key = ?1
