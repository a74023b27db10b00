DELETE FROM connections WHERE conn_id = $1
