-- The daemon writes every product of a batch in one statement: $1 keys,
-- $2 primers, $3 values, $4 snapshots (NULL after an augment: the product
-- keeps the snapshot of its last full compute), $5 compute_ms, $6/$7 soft and
-- hard expiry in seconds (NULL: none).
--
-- version goes up by one per new value. A recompute that finds the stored
-- value keeps the version, and the kck.cache capture records an update
-- only when the version moved, so products of products are not recomputed
-- for it. The row itself is still written (computed_at, expiry, snapshot):
-- a daemon that computed a key before taking its lock (listener/executor.h)
-- tells from the row version whether anyone computed it meanwhile.
-- Returns how many products were already stored with the same value (the
-- main query sees the table as it was before the CTE's write).
WITH u AS (
  SELECT *
    FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::pg_snapshot[], $5::float8[], $6::float8[], $7::float8[])
         AS u (key, primer, value, snap, ms, soft, hard)
), written AS (
  INSERT INTO kck.cache AS c (key, primer, value, version, computed_at, soft_expire, hard_expire, compute_ms,
                              error, snapshot)
  SELECT u.key, u.primer, u.value, 1, now(), now() + make_interval(secs => u.soft),
         now() + make_interval(secs => u.hard), u.ms, NULL, u.snap
    FROM u
  ON CONFLICT (key) DO UPDATE
     SET value = excluded.value,
         version = c.version + CASE WHEN c.value IS DISTINCT FROM excluded.value THEN 1 ELSE 0 END,
         computed_at = excluded.computed_at, soft_expire = excluded.soft_expire, hard_expire = excluded.hard_expire,
         compute_ms = excluded.compute_ms, error = NULL, snapshot = coalesce(excluded.snapshot, c.snapshot)
  RETURNING 1
)
SELECT count(*) FROM u JOIN kck.cache s ON s.key = u.key AND s.primer = u.primer AND s.value = u.value
