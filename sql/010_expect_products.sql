-- Schema version 10: a batch's write transaction in one round trip.
--
-- A daemon reads a batch's stored products, computes with no transaction
-- open, then locks the keys and writes. Whatever was stored, written or
-- removed between that read and the lock (a reader storing a miss, another
-- daemon's batch) must be computed again under the lock. Until 9 the daemon
-- read the rows again after the lock and compared them itself: one round
-- trip more for every batch. Now the lock, this check, the claim's
-- consumption, the writes and COMMIT go in one pipeline; when a key moved,
-- the check fails the transaction before anything is written (SQLSTATE
-- KCK01, not a transient one) and the daemon rolls back and settles the old
-- way (listener/executor.cc).
--
-- p_xmins holds, per key, the xmin of the row the daemon read, '' when it
-- read none.
CREATE FUNCTION kck.expect_products(p_keys text[], p_xmins text[]) RETURNS void
  LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  moved int;
BEGIN
  SELECT count(*) INTO moved
    FROM unnest(p_keys, p_xmins) AS e(key, xmin)
    LEFT JOIN kck.cache c ON c.key = e.key
   WHERE coalesce(c.xmin::text, '') <> e.xmin;
  IF moved > 0 THEN
    RAISE EXCEPTION '% of the batch''s % products were stored, written or removed while it computed', moved,
      cardinality(p_keys)
      USING ERRCODE = 'KCK01';
  END IF;
END $$;
