-- Schema version 12: a batch of a few cheap recomputes in one transaction.
--
-- A batch computes without locks, then writes in a short transaction that
-- checks nothing moved meanwhile (sql/010_cheaper_batches.sql): four round
-- trips for one change (claim, read, compute, write). When a batch maps to
-- at most a few stored products of sql primers whose computes have been
-- taking a couple of milliseconds, the daemon instead computes them inside
-- the write transaction, under the keys' locks, each by one statement that
-- reads the stored row, computes and updates it (Primer::compute_write,
-- primers/registry.cc): two round trips (claim, write). The transaction
-- runs with a short statement_timeout, so the locks are held briefly.
--
-- Such a statement must not commit what the normal path would not: a
-- compute with no row (the product is removed) or with several (the
-- primer's error) fails it through this function, SQLSTATE KCK02; so does
-- any error of the compute. The daemon then rolls back and runs the batch
-- the usual way, which records what the compute did (listener/fast_write.cc).
CREATE FUNCTION kck.expect_one_row(n bigint, p_key text) RETURNS boolean
  LANGUAGE plpgsql AS $$
BEGIN
  IF n <> 1 THEN
    RAISE EXCEPTION 'the compute of key % returned % rows', p_key, n USING ERRCODE = 'KCK02';
  END IF;
  RETURN true;
END $$;
