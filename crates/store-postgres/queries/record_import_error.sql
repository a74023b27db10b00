INSERT INTO import_errors (filename, message, timestamp)
VALUES ($1, $2, $3)
ON CONFLICT (filename) DO UPDATE SET
    message = excluded.message,
    timestamp = excluded.timestamp
