-- Products of primer $1 whose refresh_every ($2 seconds) has passed, oldest
-- first, at most $3, skipping those another daemon is refreshing.
SELECT key FROM kck.cache
 WHERE primer = $1 AND (computed_at IS NULL OR computed_at < now() - make_interval(secs => $2::float8))
 ORDER BY computed_at NULLS FIRST
 LIMIT $3::int
   FOR UPDATE SKIP LOCKED
