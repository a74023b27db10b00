-- Versions are immutable: a version already stored is kept as it is.
INSERT INTO dag_versions (dag_id, version, definition, created_at)
VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (dag_id, version) DO NOTHING
