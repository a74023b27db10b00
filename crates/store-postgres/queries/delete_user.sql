DELETE FROM users WHERE username = $1
