-- Listings filter, sort and page in SQL (`page_dags`, `page_runs`, `page_task_instances`):
-- the indexes their orders and scopes walk, so a page reads its rows and not the whole table.
-- Listings put empty values first when ascending (as SQLite does), so nullable sort columns
-- are indexed NULLS FIRST; `id` ends each index as the tie-breaker of every order.

-- A DAG's runs newest first (the store's default, the grid, the DAG list's strips and its
-- last-run filter), by `run_after` (the UI's runs tab), and by id (the API's default).
CREATE INDEX dag_runs_dag_queued ON dag_runs (dag_id, queued_at, id);
CREATE INDEX dag_runs_dag_run_after ON dag_runs (dag_id, (COALESCE(logical_date, queued_at)), id);
CREATE INDEX dag_runs_dag ON dag_runs (dag_id, id);
-- Every DAG's runs by `run_after` (`/dags/~/dagRuns`).
CREATE INDEX dag_runs_run_after ON dag_runs ((COALESCE(logical_date, queued_at)), id);

-- The DAG list filters by owner and tags, which live in a version's definition: kept beside
-- it, computed by the database, so that filtering reads a few bytes per DAG, not its whole
-- definition. `tags` is a JSON array.
ALTER TABLE dag_versions
    ADD COLUMN owner TEXT GENERATED ALWAYS AS ((definition::jsonb) ->> 'owner') STORED,
    ADD COLUMN tags JSONB GENERATED ALWAYS AS
        (COALESCE((definition::jsonb) -> 'tags', '[]'::jsonb)) STORED;
