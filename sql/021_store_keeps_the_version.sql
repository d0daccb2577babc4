-- Schema 21: kck.store keeps the version when the value is the one stored.
--
-- kck.cache's version goes up by one on every write of a new value (the
-- daemon's writes, sql/daemon_write.sql). kck.store, which Django's misses
-- and refreshes and `kck get`/`kck refresh` write through, raised it on
-- every write, so `kck refresh` of an unchanged product made a new version,
-- and the kck.cache capture then recomputed the products built on it for
-- nothing. The row is still written (computed_at, expiry, snapshot, error
-- cleared), as a daemon recompute writes it.
CREATE OR REPLACE FUNCTION kck.store(p_key text, p_primer text, p_value jsonb, p_snapshot pg_snapshot,
                                     p_compute_ms double precision, p_soft interval, p_hard interval,
                                     p_expected_version bigint)
  RETURNS TABLE (value jsonb, version bigint, stored boolean)
  LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY
    INSERT INTO kck.cache AS c (key, primer, value, version, computed_at, soft_expire, hard_expire,
                                compute_ms, error, snapshot)
    VALUES (p_key, p_primer, p_value, 1, now(), now() + p_soft, now() + p_hard, p_compute_ms, NULL,
            p_snapshot)
    ON CONFLICT (key) DO UPDATE
      SET value = excluded.value,
          version = c.version + CASE WHEN c.value IS DISTINCT FROM excluded.value THEN 1 ELSE 0 END,
          computed_at = excluded.computed_at, soft_expire = excluded.soft_expire,
          hard_expire = excluded.hard_expire, compute_ms = excluded.compute_ms, error = NULL,
          snapshot = excluded.snapshot
      WHERE c.version = p_expected_version
    RETURNING c.value, c.version, true;
  IF NOT FOUND THEN
    RETURN QUERY SELECT c.value, c.version, false FROM kck.cache c WHERE c.key = p_key;
  END IF;
END $$;
