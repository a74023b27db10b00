-- The conditions every run listing shares (its `{filter}`): ?2 DAG ids, ?3 states and ?4 run
-- types (JSON arrays, empty: any), ?5 a LIKE pattern of the run id, ?6 to ?21 bounds (>=, >,
-- <=, <) on the logical date, run_after, start and end date, ?22 text the conf contains.
(json_array_length(?2) = 0 OR dag_id IN (SELECT value FROM json_each(?2)))
AND (json_array_length(?3) = 0 OR state IN (SELECT value FROM json_each(?3)))
AND (json_array_length(?4) = 0 OR run_type IN (SELECT value FROM json_each(?4)))
AND (?5 IS NULL OR run_id LIKE ?5)
AND (?6 IS NULL OR logical_date >= ?6) AND (?7 IS NULL OR logical_date > ?7)
AND (?8 IS NULL OR logical_date <= ?8) AND (?9 IS NULL OR logical_date < ?9)
AND (?10 IS NULL OR COALESCE(logical_date, queued_at) >= ?10)
AND (?11 IS NULL OR COALESCE(logical_date, queued_at) > ?11)
AND (?12 IS NULL OR COALESCE(logical_date, queued_at) <= ?12)
AND (?13 IS NULL OR COALESCE(logical_date, queued_at) < ?13)
AND (?14 IS NULL OR start_date >= ?14) AND (?15 IS NULL OR start_date > ?15)
AND (?16 IS NULL OR start_date <= ?16) AND (?17 IS NULL OR start_date < ?17)
AND (?18 IS NULL OR end_date >= ?18) AND (?19 IS NULL OR end_date > ?19)
AND (?20 IS NULL OR end_date <= ?20) AND (?21 IS NULL OR end_date < ?21)
AND (?22 IS NULL OR instr(conf, ?22) > 0)
