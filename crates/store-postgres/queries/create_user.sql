-- A duplicate username or email inserts nothing and returns no row.
INSERT INTO users (username, password_hash, role, first_name, last_name, email, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT DO NOTHING
RETURNING *
