-- Sent inside the writing transaction: Postgres delivers it to listeners only at commit.
SELECT pg_notify($1, $2)
