DELETE FROM import_errors WHERE filename = $1
