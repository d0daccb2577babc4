-- Schema 15: a daemon that claims clears the wake-up flag.
--
-- Writers notify while kck.daemon_waiting is 1 (sql/006_wake_flag.sql).
-- A daemon sets it when it goes idle, and cleared it only when its idle
-- look found changes pending. A daemon woken by a notification (or by its
-- recheck or periodic look) claimed with the flag still 1, and under load
-- it went from batch to batch without going idle again: every writer
-- notified at every statement for as long as the load lasted, the
-- database-wide lock at commit that issue 8 removed, and each
-- notification made the daemon claim at once instead of letting changes
-- gather (the coalescing window): at 16 pgbench clients with
-- synchronous_commit off the writers kept 0.26-0.83x of their throughput
-- without a daemon from one run to the next, 0.80-0.90x with this
-- (bench/daemon_ab.sh -o). Every claim now clears
-- the flag: the daemon that claims is busy, and it sets the flag again and
-- looks at the outbox before it sleeps, so a writer that reads 0 has its
-- change claimed by it, as after an idle look that found changes. Another
-- daemon that sets the flag while this one is busy has it cleared by this
-- one's next claim, within a batch.
--
-- A daemon that stops cleanly while others remain sets the flag and
-- notifies: the others may be idle while the flag is 0 (this one was busy
-- and would have looked again), and changes it left unclaimed wait for
-- them. Before, they waited for the others' periodic look (5 s).
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
  -- This daemon is busy, and looks at the outbox again before it sleeps
  -- (kck.listener_idle): writers need not notify.
  IF pg_sequence_last_value('kck.daemon_waiting') = 1 THEN
    PERFORM setval('kck.daemon_waiting', 0);
  END IF;
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

CREATE OR REPLACE FUNCTION kck.listener_unregister(p_id bigint) RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  DELETE FROM kck.listeners WHERE id = p_id;
  IF EXISTS (SELECT 1 FROM kck.listeners l JOIN pg_stat_activity a ON a.pid = l.id) THEN
    PERFORM setval('kck.daemon_waiting', 1);
    PERFORM pg_notify('kck', '');
  ELSE
    PERFORM setval('kck.daemon_waiting', 0);
  END IF;
END $$;
