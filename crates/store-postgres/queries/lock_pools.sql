-- Claimers take pool slots one at a time: each holds every pool row until it commits.
SELECT name FROM pools ORDER BY name FOR UPDATE
