DELETE FROM variables WHERE key = $1
