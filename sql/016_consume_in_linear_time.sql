-- Schema 16: a claim's consumption checks its changes' ids in linear time.
--
-- kck.consume_claim (sql/010_cheaper_batches.sql) deleted each outbox
-- part's changes with `x.ctid = ANY (tids) AND x.id = ANY (c.ids)`. The
-- ids are an array in a variable, so the second test searched it row by
-- row: quadratic in the batch. A batch of 5000 changes (a daemon catching
-- up) spent 124 ms in that test alone on an idle machine and 300-550 ms
-- at 16 pgbench clients, where the deletion by tuple id takes 2 ms. Now
-- the deletion goes by tuple id alone and returns the ids it deleted, and
-- the function compares them, sorted, with the claim's. A tuple id whose
-- row is gone, or that holds another change (its part was truncated and
-- written again), makes the two differ: the function fails with SQLSTATE
-- 40001 and the transaction, the wrong deletion with it, rolls back, as
-- before. With enable_seqscan off (sql/014_consume_by_tuple_id.sql) a
-- statement that could only scan would be costed at 1e10 and compiled by
-- JIT (40-120 ms here): none of these can, and jit is off besides.
CREATE OR REPLACE FUNCTION kck.consume_claim(p_claim bigint) RETURNS void
  LANGUAGE plpgsql SET enable_seqscan = off SET jit = off AS $$
DECLARE
  c kck.claims;
  got bigint[] := '{}';
  part bigint[];
  missing bigint;
BEGIN
  DELETE FROM kck.claims x WHERE x.id = p_claim RETURNING x.* INTO c;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'claim % was released before its batch was written (its daemon looked gone)', p_claim
      USING ERRCODE = 'serialization_failure';
  END IF;
  IF 0 = ANY (c.parts) THEN
    WITH d AS (DELETE FROM kck.changes_0 x
                WHERE x.ctid = ANY (ARRAY(SELECT u.t FROM unnest(c.tids, c.parts) AS u(t, q) WHERE u.q = 0))
                RETURNING x.id)
    SELECT array_agg(d.id) INTO part FROM d;
    got := got || coalesce(part, '{}');
  END IF;
  IF 1 = ANY (c.parts) THEN
    WITH d AS (DELETE FROM kck.changes_1 x
                WHERE x.ctid = ANY (ARRAY(SELECT u.t FROM unnest(c.tids, c.parts) AS u(t, q) WHERE u.q = 1))
                RETURNING x.id)
    SELECT array_agg(d.id) INTO part FROM d;
    got := got || coalesce(part, '{}');
  END IF;
  IF 2 = ANY (c.parts) THEN
    WITH d AS (DELETE FROM kck.changes_2 x
                WHERE x.ctid = ANY (ARRAY(SELECT u.t FROM unnest(c.tids, c.parts) AS u(t, q) WHERE u.q = 2))
                RETURNING x.id)
    SELECT array_agg(d.id) INTO part FROM d;
    got := got || coalesce(part, '{}');
  END IF;
  IF ARRAY(SELECT unnest(got) ORDER BY 1) IS DISTINCT FROM ARRAY(SELECT unnest(c.ids) ORDER BY 1) THEN
    SELECT count(*) INTO missing FROM (SELECT unnest(c.ids) EXCEPT SELECT unnest(got)) m;
    RAISE EXCEPTION 'claim %: % of its % changes were consumed by another daemon', p_claim, missing,
      cardinality(c.ids)
      USING ERRCODE = 'serialization_failure';
  END IF;
END $$;
