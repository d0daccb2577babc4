-- Schema version 4: wake-ups that cost writers nothing under load.
--
-- pg_notify takes one database-wide lock at commit and holds it through the
-- WAL flush, so every notifying commit serializes behind the others. A
-- writer therefore notifies only when a daemon is idle and waiting for it:
-- each daemon has a row here, `waiting` is true while it sleeps, and the
-- capture functions read it after they wrote their change.
--
-- No wake-up is lost. A daemon that finds nothing to do marks itself waiting
-- and commits (kck.listener_idle), then looks at the outbox with a new
-- snapshot. A READ COMMITTED writer that read `waiting = false` read it with
-- a snapshot taken before that commit, after its own change got its
-- transaction id; so the writer has either committed, and the look finds its
-- change, or it is still running, and its id is in the list the procedure
-- returns. The daemon polls until those transactions end (see
-- listener/wakeup.h). Writers in REPEATABLE READ or SERIALIZABLE read the
-- flag with their transaction's older snapshot, so they always notify.
CREATE TABLE kck.listeners (
  id      bigint PRIMARY KEY,  -- backend pid of the daemon's listening connection
  waiting boolean NOT NULL DEFAULT false,
  since   timestamptz NOT NULL DEFAULT now()
);

-- Whether a writer that just queued a change must wake a daemon. The
-- capture functions inline the same test (triggers/capture.cc): plpgsql
-- keeps its plan for the session, where a SQL function with a subquery is
-- planned again in every transaction.
CREATE FUNCTION kck.must_notify() RETURNS boolean
  LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN current_setting('transaction_isolation') <> 'read committed'
         OR EXISTS (SELECT 1 FROM kck.listeners WHERE waiting);
END $$;

-- A daemon registers on connect; rows of daemons whose connection is gone
-- are removed (their `waiting` would make every writer notify).
CREATE FUNCTION kck.listener_register(p_id bigint) RETURNS void
  LANGUAGE sql AS $$
  DELETE FROM kck.listeners l
   WHERE l.id <> p_id AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.id);
  INSERT INTO kck.listeners (id, waiting) VALUES (p_id, false)
    ON CONFLICT (id) DO UPDATE SET waiting = false, since = now();
$$;

-- A daemon with nothing left to do: marks itself waiting, commits, then
-- looks at the outbox. With changes pending it stays busy (waiting is set
-- back in the same call); otherwise it returns the transactions still open
-- at the look, whose changes may come without a notification. CALL it
-- outside a transaction block: it commits.
CREATE PROCEDURE kck.listener_idle(p_id bigint, INOUT pending boolean DEFAULT NULL,
                                   INOUT open_xids xid8[] DEFAULT NULL)
  LANGUAGE plpgsql AS $$
DECLARE
  snap pg_snapshot;
  next_xid xid8;
BEGIN
  -- Written only when it changes: a daemon woken by a notification is
  -- still marked waiting, and goes back to sleep without a write.
  UPDATE kck.listeners SET waiting = true, since = now() WHERE id = p_id AND NOT waiting;
  IF NOT FOUND THEN
    INSERT INTO kck.listeners (id, waiting) VALUES (p_id, true) ON CONFLICT (id) DO NOTHING;
  END IF;
  COMMIT;
  -- The snapshot comes before the look: a writer that commits between
  -- them is still open in it, and one that committed before is seen.
  snap := pg_current_snapshot();
  pending := EXISTS (SELECT 1 FROM kck.changes);
  IF pending THEN
    UPDATE kck.listeners SET waiting = false, since = now() WHERE id = p_id;
    open_xids := '{}';
  ELSE
    -- A snapshot lists the running transactions below its xmax only; those
    -- with ids from xmax up run too. An id assigned now bounds them all.
    next_xid := pg_current_xact_id();
    open_xids := ARRAY(SELECT pg_snapshot_xip(snap)
                       UNION
                       SELECT x::text::xid8
                         FROM generate_series(pg_snapshot_xmax(snap)::text::bigint, next_xid::text::bigint - 1) AS x);
  END IF;
END $$;

-- While the daemon waits for the transactions listener_idle returned: is
-- something queued, and which of them are still running?
-- The open ones first: one that ended before the look (a new snapshot,
-- the function is VOLATILE) is seen by it.
CREATE FUNCTION kck.listener_recheck(p_xids xid8[], OUT pending boolean, OUT open_xids xid8[])
  LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  open_xids := ARRAY(SELECT x FROM unnest(p_xids) AS x WHERE pg_xact_status(x) = 'in progress');
  pending := EXISTS (SELECT 1 FROM kck.changes);
END $$;

-- A daemon that stops cleanly removes its row.
CREATE FUNCTION kck.listener_unregister(p_id bigint) RETURNS void
  LANGUAGE sql AS $$ DELETE FROM kck.listeners WHERE id = p_id $$;

-- Refresh requests wake a daemon the same way captures do.
CREATE OR REPLACE FUNCTION kck.queue_refresh(keys text[]) RETURNS void
  LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO kck.changes (tbl, op, new)
    SELECT 'kck.refresh', 'U', jsonb_build_object('key', k) FROM unnest(keys) AS k;
  IF FOUND AND kck.must_notify() THEN
    PERFORM pg_notify('kck', '');
  END IF;
END $$;
