-- A hand-set state: $3 says whether it is a finished one (the run ends now).
UPDATE dag_runs SET
    state = $2,
    end_date = CASE WHEN $3 THEN $4 ELSE NULL END
WHERE id = $1 AND state = $5
RETURNING *
