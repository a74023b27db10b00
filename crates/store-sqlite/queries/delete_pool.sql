DELETE FROM pools WHERE name = ?1
