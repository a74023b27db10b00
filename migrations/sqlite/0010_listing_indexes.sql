-- Listings filter, sort and page in SQL (`page_dags`, `page_runs`, `page_task_instances`):
-- the indexes their orders and scopes walk, so a page reads its rows and not the whole table.
-- SQLite ends every index with the rowid (`id`), the tie-breaker of every order.

-- A DAG's runs newest first (the store's default, the grid, the DAG list's strips and its
-- last-run filter), by `run_after` (the UI's runs tab), and by id (the API's default).
CREATE INDEX dag_runs_dag_queued ON dag_runs (dag_id, queued_at);
CREATE INDEX dag_runs_dag_run_after ON dag_runs (dag_id, COALESCE(logical_date, queued_at));
CREATE INDEX dag_runs_dag ON dag_runs (dag_id);
-- Every DAG's runs by `run_after` (`/dags/~/dagRuns`).
CREATE INDEX dag_runs_run_after ON dag_runs (COALESCE(logical_date, queued_at));

-- The DAG list filters by owner and tags, which live in a version's definition: kept beside
-- it (set on insert by the trigger) so that filtering reads a few bytes per DAG, not its
-- whole definition. `tags` is a JSON array.
ALTER TABLE dag_versions ADD COLUMN owner TEXT;
ALTER TABLE dag_versions ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
UPDATE dag_versions
SET owner = json_extract(definition, '$.owner'),
    tags = COALESCE(json_extract(definition, '$.tags'), '[]');
CREATE TRIGGER dag_versions_listing AFTER INSERT ON dag_versions
BEGIN
    UPDATE dag_versions
    SET owner = json_extract(NEW.definition, '$.owner'),
        tags = COALESCE(json_extract(NEW.definition, '$.tags'), '[]')
    WHERE dag_id = NEW.dag_id AND version = NEW.version;
END;
