-- A duplicate username inserts nothing and returns no row.
INSERT INTO users (username, password_hash, role, created_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (username) DO NOTHING
RETURNING *
