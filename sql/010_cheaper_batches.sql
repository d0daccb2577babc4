-- Schema version 10: cheaper batches.
--
-- 1. The write transaction in one round trip.
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

-- 2. Claims and their consumption without dynamic SQL. kck.claim_batch and
-- kck.consume_claim (sql/007_claims.sql) built one statement per outbox
-- part with format() and EXECUTE, planned again on every call: with the
-- statement per part written out, PL/pgSQL keeps its plan. Measured with
-- pgbench on one pending change (claim, rolled back): 0.26 ms instead of
-- 0.40 ms over an empty transaction. The claim's owner_start, which reads
-- the server's activity array, is read once per session
-- (kck.owner_start, a session setting).
CREATE OR REPLACE FUNCTION kck.claim_batch(n int)
  RETURNS TABLE (claim bigint, id bigint, tbl text, op char(1), old text, new text, txid text)
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  writing int := kck.outbox_part();
  held bigint[];
  me bigint;
  part int;
  lim int;
  started text := current_setting('kck.owner_start', true);
  -- The batch, gathered part by part, so that the claim is one row written
  -- once: every version of it is a dead row while the horizon is held.
  a_id bigint[] := '{}';
  a_part smallint[] := '{}';
  a_tid tid[] := '{}';
  a_tbl text[] := '{}';
  a_op text[] := '{}';
  a_old text[] := '{}';
  a_new text[] := '{}';
  a_txid text[] := '{}';
  p_id bigint[];
  p_tid tid[];
  p_tbl text[];
  p_op text[];
  p_old text[];
  p_new text[];
  p_txid text[];
BEGIN
  -- One claim at a time: after this lock, the next statement's snapshot
  -- shows every claim committed before.
  PERFORM pg_advisory_xact_lock(7037805, 0);
  held := ARRAY(SELECT unnest(c.ids) FROM kck.claims c);
  FOR turn IN 1..3 LOOP
    EXIT WHEN cardinality(a_id) >= n;
    part := (writing + turn) % 3;  -- written two turns ago, then one, then now
    lim := n - cardinality(a_id);
    -- pg_relation_size takes no lock it keeps: an empty part stays unlocked.
    IF part = 0 THEN
      CONTINUE WHEN pg_relation_size('kck.changes_0'::regclass) = 0;
      SELECT array_agg(x.id), array_agg(x.ctid), array_agg(x.tbl), array_agg(x.op::text), array_agg(x.old::text),
             array_agg(x.new::text), array_agg(x.txid::text)
        INTO p_id, p_tid, p_tbl, p_op, p_old, p_new, p_txid
        FROM (SELECT y.id, y.ctid, y.tbl, y.op, y.old, y.new, y.txid FROM kck.changes_0 y
               WHERE y.id NOT IN (SELECT unnest(held)) LIMIT lim) x;
    ELSIF part = 1 THEN
      CONTINUE WHEN pg_relation_size('kck.changes_1'::regclass) = 0;
      SELECT array_agg(x.id), array_agg(x.ctid), array_agg(x.tbl), array_agg(x.op::text), array_agg(x.old::text),
             array_agg(x.new::text), array_agg(x.txid::text)
        INTO p_id, p_tid, p_tbl, p_op, p_old, p_new, p_txid
        FROM (SELECT y.id, y.ctid, y.tbl, y.op, y.old, y.new, y.txid FROM kck.changes_1 y
               WHERE y.id NOT IN (SELECT unnest(held)) LIMIT lim) x;
    ELSE
      CONTINUE WHEN pg_relation_size('kck.changes_2'::regclass) = 0;
      SELECT array_agg(x.id), array_agg(x.ctid), array_agg(x.tbl), array_agg(x.op::text), array_agg(x.old::text),
             array_agg(x.new::text), array_agg(x.txid::text)
        INTO p_id, p_tid, p_tbl, p_op, p_old, p_new, p_txid
        FROM (SELECT y.id, y.ctid, y.tbl, y.op, y.old, y.new, y.txid FROM kck.changes_2 y
               WHERE y.id NOT IN (SELECT unnest(held)) LIMIT lim) x;
    END IF;
    CONTINUE WHEN p_id IS NULL;
    a_id := a_id || p_id;
    a_part := a_part || array_fill(part::smallint, ARRAY[cardinality(p_id)]);
    a_tid := a_tid || p_tid;
    a_tbl := a_tbl || p_tbl;
    a_op := a_op || p_op;
    a_old := a_old || p_old;
    a_new := a_new || p_new;
    a_txid := a_txid || p_txid;
  END LOOP;
  IF cardinality(a_id) = 0 THEN
    RETURN;  -- nothing claimed, no claim written
  END IF;
  IF coalesce(started, '') = '' THEN
    -- JSON's text of a timestamptz is ISO 8601 whatever the DateStyle.
    started := to_json((SELECT a.backend_start FROM pg_stat_get_activity(pg_backend_pid()) a)) #>> '{}';
    IF started IS NOT NULL THEN
      PERFORM set_config('kck.owner_start', started, false);
    END IF;
  END IF;
  INSERT INTO kck.claims (owner_pid, owner_start, ids, parts, tids)
    VALUES (pg_backend_pid(), started::timestamptz, a_id, a_part, a_tid)
    RETURNING kck.claims.id INTO me;
  RETURN QUERY SELECT me, u.i, u.t, u.o::char(1), u.ol, u.nw, u.x
                 FROM unnest(a_id, a_tbl, a_op, a_old, a_new, a_txid) AS u(i, t, o, ol, nw, x);
END $$;

CREATE OR REPLACE FUNCTION kck.consume_claim(p_claim bigint) RETURNS void
  LANGUAGE plpgsql AS $$
DECLARE
  c kck.claims;
  deleted int := 0;
  got int;
BEGIN
  DELETE FROM kck.claims x WHERE x.id = p_claim RETURNING x.* INTO c;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'claim % was released before its batch was written (its daemon looked gone)', p_claim
      USING ERRCODE = 'serialization_failure';
  END IF;
  IF 0 = ANY (c.parts) THEN
    DELETE FROM kck.changes_0 x
     WHERE x.ctid = ANY (ARRAY(SELECT u.t FROM unnest(c.tids, c.parts) AS u(t, q) WHERE u.q = 0))
       AND x.id = ANY (c.ids);
    GET DIAGNOSTICS got = ROW_COUNT;
    deleted := deleted + got;
  END IF;
  IF 1 = ANY (c.parts) THEN
    DELETE FROM kck.changes_1 x
     WHERE x.ctid = ANY (ARRAY(SELECT u.t FROM unnest(c.tids, c.parts) AS u(t, q) WHERE u.q = 1))
       AND x.id = ANY (c.ids);
    GET DIAGNOSTICS got = ROW_COUNT;
    deleted := deleted + got;
  END IF;
  IF 2 = ANY (c.parts) THEN
    DELETE FROM kck.changes_2 x
     WHERE x.ctid = ANY (ARRAY(SELECT u.t FROM unnest(c.tids, c.parts) AS u(t, q) WHERE u.q = 2))
       AND x.id = ANY (c.ids);
    GET DIAGNOSTICS got = ROW_COUNT;
    deleted := deleted + got;
  END IF;
  IF deleted <> cardinality(c.ids) THEN
    RAISE EXCEPTION 'claim %: % of its % changes were consumed by another daemon', p_claim,
      cardinality(c.ids) - deleted, cardinality(c.ids)
      USING ERRCODE = 'serialization_failure';
  END IF;
END $$;
