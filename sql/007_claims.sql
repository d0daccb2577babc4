-- Schema version 7: a batch's claim commits at once, so no transaction is
-- open while its products are computed.
--
-- Until 6 a daemon claimed its changes by deleting them in the batch
-- transaction, and kept that transaction open while the computes ran (each
-- up to --compute-timeout): a transaction id that held back the xmin
-- horizon of the whole database, and locks that kept the outbox parts it
-- read from being truncated. Now:
--
--   claim    kck.claim_batch: notes the batch in kck.claims and commits,
--            in milliseconds. The changes stay in the outbox, unlocked.
--   compute  outside any transaction.
--   write    one short transaction locks the keys, writes the products and
--            calls kck.consume_claim, which deletes the batch's changes and
--            its claim, and fails (SQLSTATE 40001) unless every change was
--            still there: the batch then rolls back and its changes are
--            claimed again.
--
-- So a change is consumed exactly once, by the transaction that writes
-- what it changed, whatever happens to claims. Claims only keep daemons
-- from computing the same changes twice: one daemon claims at a time, and
-- skips the changes of every claim noted before it. A daemon that dies
-- between claim and write leaves its claim; every daemon releases, once a
-- second, the claims whose backend is gone (kck.release_orphan_claims),
-- and truncates the table whenever it is empty (kck.outbox_truncate), so
-- that a held xmin horizon cannot make claims read through dead rows.
CREATE TABLE kck.claims (
  id          bigserial PRIMARY KEY,
  owner_pid   int NOT NULL,             -- the claiming connection's backend
  owner_start timestamptz,              -- ... and its start: pids are reused
  ids         bigint[] NOT NULL DEFAULT '{}',
  parts       smallint[] NOT NULL DEFAULT '{}',  -- the outbox part of each change
  tids        tid[] NOT NULL DEFAULT '{}',       -- ... and its place in it
  at          timestamptz NOT NULL DEFAULT now()
);

-- Claims up to n changes that no other claim holds, the oldest part first
-- and each part in its physical order (no sort of the outbox: after an
-- outage of a million changes a claim still reads about a batch of rows).
-- Every row carries the claim's id. Call it in its own transaction and
-- commit (sql/daemon_claim.sql). SECURITY DEFINER: the claim's id comes from
-- a sequence, which "ON ALL TABLES" grants do not cover.
CREATE FUNCTION kck.claim_batch(n int)
  RETURNS TABLE (claim bigint, id bigint, tbl text, op char(1), old text, new text, txid text)
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  writing int := kck.outbox_part();
  held bigint[];
  me bigint;
  part int;
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
    -- pg_relation_size takes no lock it keeps: an empty part stays unlocked.
    CONTINUE WHEN pg_relation_size(format('kck.changes_%s', part)::regclass) = 0;
    EXECUTE format($q$
      SELECT array_agg(x.id), array_agg(x.tid), array_agg(x.tbl), array_agg(x.op::text), array_agg(x.old::text),
             array_agg(x.new::text), array_agg(x.txid::text)
        FROM (SELECT y.id, y.ctid AS tid, y.tbl, y.op, y.old, y.new, y.txid FROM kck.changes_%s y
               WHERE y.id NOT IN (SELECT unnest($1::bigint[])) LIMIT $2) x
      $q$, part)
      USING held, n - cardinality(a_id)
      INTO p_id, p_tid, p_tbl, p_op, p_old, p_new, p_txid;
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
  INSERT INTO kck.claims (owner_pid, owner_start, ids, parts, tids)
    VALUES (pg_backend_pid(), (SELECT a.backend_start FROM pg_stat_get_activity(pg_backend_pid()) a),
            a_id, a_part, a_tid)
    RETURNING kck.claims.id INTO me;
  RETURN QUERY SELECT me, u.i, u.t, u.o::char(1), u.ol, u.nw, u.x
                 FROM unnest(a_id, a_tbl, a_op, a_old, a_new, a_txid) AS u(i, t, o, ol, nw, x);
END $$;

-- In the batch's write transaction: deletes the claim and its changes.
-- Raises serialization_failure unless the claim and every one of its
-- changes were still there (the claim was released as an orphan and
-- another daemon consumed some of them): the batch must roll back.
CREATE FUNCTION kck.consume_claim(p_claim bigint) RETURNS void
  LANGUAGE plpgsql AS $$
DECLARE
  c kck.claims;
  tids tid[];
  deleted int := 0;
  got int;
BEGIN
  DELETE FROM kck.claims x WHERE x.id = p_claim RETURNING x.* INTO c;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'claim % was released before its batch was written (its daemon looked gone)', p_claim
      USING ERRCODE = 'serialization_failure';
  END IF;
  FOR p IN 0..2 LOOP
    tids := ARRAY(SELECT u.t FROM unnest(c.tids, c.parts) AS u(t, q) WHERE u.q = p);
    CONTINUE WHEN cardinality(tids) = 0;
    EXECUTE format('DELETE FROM kck.changes_%s x WHERE x.ctid = ANY ($1) AND x.id = ANY ($2)', p) USING tids, c.ids;
    GET DIAGNOSTICS got = ROW_COUNT;
    deleted := deleted + got;
  END LOOP;
  IF deleted <> cardinality(c.ids) THEN
    RAISE EXCEPTION 'claim %: % of its % changes were consumed by another daemon', p_claim,
      cardinality(c.ids) - deleted, cardinality(c.ids)
      USING ERRCODE = 'serialization_failure';
  END IF;
END $$;

-- Releases the claims of daemons whose backend is gone, so their changes
-- are claimed again; returns how many. (A backend of another role shows no
-- start time: it counts as alive while its pid runs.)
CREATE FUNCTION kck.release_orphan_claims() RETURNS int
  LANGUAGE sql AS $$
  WITH gone AS (
    DELETE FROM kck.claims c
     WHERE NOT EXISTS (SELECT 1 FROM pg_stat_get_activity(c.owner_pid) a
                        WHERE a.backend_start IS NULL OR a.backend_start = c.owner_start)
    RETURNING 1)
  SELECT count(*)::int FROM gone
$$;

-- Truncates `rel` if, under its ACCESS EXCLUSIVE lock taken without
-- waiting, a look with a new snapshot finds no row in it; returns whether
-- it did. Holding the lock, no writer is in flight on it, so every row it
-- got is committed and seen, or gone. Call it in READ COMMITTED (in
-- REPEATABLE READ the look would use a snapshot from before the lock).
-- Not SECURITY DEFINER: it runs with its caller's privileges (the owner's,
-- when kck.outbox_truncate calls it), so it truncates nothing its caller
-- could not.
CREATE FUNCTION kck.truncate_if_empty(rel regclass) RETURNS boolean
  LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  pending boolean;
BEGIN
  IF pg_relation_size(rel) = 0 THEN
    RETURN false;
  END IF;
  EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE NOWAIT', rel);
  EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s)', rel) INTO pending;
  IF pending THEN
    RETURN false;
  END IF;
  EXECUTE format('TRUNCATE %s', rel);
  RETURN true;
EXCEPTION WHEN lock_not_available THEN
  RETURN false;
END $$;

-- The outbox's upkeep, once a second (sql/005_outbox_parts.sql), with
-- kck.claims too when no claim is open (every second for a single daemon,
-- which runs its upkeep between batches), so that its dead rows cannot pile
-- up while the xmin horizon is held.
CREATE OR REPLACE FUNCTION kck.outbox_truncate() RETURNS int
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  writing int := kck.outbox_part();
  emptied int := 0;
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RETURN 0;
  END IF;
  FOR p IN 0..2 LOOP
    CONTINUE WHEN p = writing;
    emptied := emptied + kck.truncate_if_empty(format('kck.changes_%s', p)::regclass)::int;
  END LOOP;
  RETURN emptied + kck.truncate_if_empty('kck.claims')::int;
END $$;

-- Whether a change is pending that no claim holds: the look of an idle
-- daemon and its rechecks (sql/006_wake_flag.sql). A change another daemon
-- has claimed is that daemon's to write; counting it would keep an idle
-- daemon claiming nothing in a loop while another computes.
CREATE OR REPLACE FUNCTION kck.outbox_pending() RETURNS boolean
  LANGUAGE sql STABLE AS $$
  SELECT EXISTS (SELECT 1 FROM kck.changes c
                  WHERE c.id NOT IN (SELECT unnest(k.ids) FROM kck.claims k))
$$;
