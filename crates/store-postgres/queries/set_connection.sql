INSERT INTO connections (conn_id, conn_type, description, host, schema, login, password, port,
                         extra, is_encrypted)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (conn_id) DO UPDATE SET
    conn_type = excluded.conn_type, description = excluded.description, host = excluded.host,
    schema = excluded.schema, login = excluded.login, password = excluded.password,
    port = excluded.port, extra = excluded.extra, is_encrypted = excluded.is_encrypted
