-- The daemon writes every product of a batch in one statement: $1 keys,
-- $2 primers, $3 values, $4 snapshots (NULL after an augment: the product
-- keeps the snapshot of its last full compute), $5 compute_ms, $6/$7 soft and
-- hard expiry in seconds (NULL: none), $8 whether to write even an
-- unchanged value (its snapshot, expiry or refresh time must move).
--
-- Only what changed is written: a value equal to the stored one (and no
-- error to clear) writes nothing, unless $8; then the row is renewed but
-- its version stays, and the kck.cache capture records no change, so
-- products of products are not recomputed. version goes up by one per new
-- value. Returns one row per product written.
INSERT INTO kck.cache AS c (key, primer, value, version, computed_at, soft_expire, hard_expire, compute_ms,
                            error, snapshot)
SELECT u.key, u.primer, u.value, 1, now(), now() + make_interval(secs => u.soft),
       now() + make_interval(secs => u.hard), u.ms, NULL, u.snap
  FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::pg_snapshot[], $5::float8[], $6::float8[], $7::float8[],
              $8::boolean[])
       AS u (key, primer, value, snap, ms, soft, hard, renew)
 WHERE u.renew
    OR NOT EXISTS (SELECT 1 FROM kck.cache s
                    WHERE s.key = u.key AND s.primer = u.primer AND s.value = u.value AND s.error IS NULL)
ON CONFLICT (key) DO UPDATE
   SET value = excluded.value,
       version = c.version + CASE WHEN c.value IS DISTINCT FROM excluded.value THEN 1 ELSE 0 END,
       computed_at = excluded.computed_at, soft_expire = excluded.soft_expire, hard_expire = excluded.hard_expire,
       compute_ms = excluded.compute_ms, error = NULL, snapshot = coalesce(excluded.snapshot, c.snapshot)
RETURNING 1
