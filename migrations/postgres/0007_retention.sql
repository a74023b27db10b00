-- The run just before another by logical date, of any run type: what depends_on_past reads,
-- and what `db clean` keeps (each DAG's newest run, and the one before each unfinished run).
CREATE INDEX dag_runs_dag_previous ON dag_runs (dag_id, logical_date);
