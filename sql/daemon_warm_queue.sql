-- Warm-ups (listener/warmer.h): of the keys $1, queues a refresh of those
-- neither stored nor already queued, and returns how many. The daemon runs
-- it in a transaction holding advisory lock (7037805, 1), so daemons warming
-- at the same time do not queue a key twice.
WITH missing AS (
  SELECT array_agg(u.k ORDER BY u.o) AS keys
    FROM unnest($1::text[]) WITH ORDINALITY AS u (k, o)
   WHERE NOT EXISTS (SELECT 1 FROM kck.cache c WHERE c.key = u.k)
     AND NOT EXISTS (SELECT 1 FROM kck.changes q WHERE q.tbl = 'kck.refresh' AND q.new->>'key' = u.k)
)
SELECT coalesce(cardinality(keys), 0), kck.queue_refresh(coalesce(keys, '{}')) FROM missing
