-- The query planner's statistics of every table, read afresh (after a bulk load).
ANALYZE
