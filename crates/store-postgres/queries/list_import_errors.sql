SELECT id, filename, message, timestamp FROM import_errors ORDER BY filename
