DELETE FROM xcom WHERE run IN (SELECT value FROM json_each(?1))
