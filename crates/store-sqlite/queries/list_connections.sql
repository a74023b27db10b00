SELECT * FROM connections ORDER BY conn_id
