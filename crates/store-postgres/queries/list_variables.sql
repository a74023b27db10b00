SELECT key, val, description, is_encrypted FROM variables ORDER BY key
