-- Appends to one task instance's log take turns, so sequence numbers never collide. The lock
-- is released at commit.
SELECT pg_advisory_xact_lock($1)
