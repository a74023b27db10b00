SELECT * FROM users ORDER BY username
