-- Schema version 6: the wake-up flag in a sequence.
--
-- 004 kept "a daemon waits" in kck.listeners.waiting, and every writer
-- looked at that table. Under load a daemon goes idle and busy hundreds of
-- times a second; while another transaction (an analytics query, pg_dump)
-- holds back the xmin horizon, every flip leaves a row version that no
-- vacuum can remove and that every writer's look steps over: 62 000 flips
-- in four minutes grew the one-row table to 1.9 MB, and writers at
-- 1000 tps fell up to 38 s behind (bench/write_path.py, section 5).
--
-- A sequence is one row, overwritten in place and outside MVCC: setval is
-- seen at once by every transaction, whatever its snapshot or isolation
-- level, and leaves nothing behind. 1 means "a daemon may be waiting:
-- notify"; 0 means "a daemon is busy and looks at the outbox again before
-- it sleeps".
--
-- No wake-up is lost. A writer reads the flag after its change got its
-- transaction id. A daemon going idle sets 1, then looks at the outbox
-- with a new snapshot. A writer that read 0 read it either before that
-- setval (so its transaction is committed and seen by the look, or still
-- running and returned in open_xids for the daemon to recheck), or after
-- another daemon set 0 because it found changes pending: that daemon is
-- busy, claims until the outbox is empty and looks again when it goes idle.
-- A daemon that dies busy leaves 0: the other daemons' periodic look (every
-- 5 s), or its own reconnect, covers that.
CREATE SEQUENCE kck.daemon_waiting MINVALUE 0 MAXVALUE 1 START 0 NO CYCLE;
-- A daemon that waits through this upgrade is woken as before.
SELECT setval('kck.daemon_waiting', 1) WHERE EXISTS (SELECT 1 FROM kck.listeners WHERE waiting);

-- kck.listeners stays the list of daemons (kck status). Capture functions
-- installed before this migration read its `waiting`: true for good, so
-- they notify until kck install replaces them.
ALTER TABLE kck.listeners ALTER COLUMN waiting SET DEFAULT true;
UPDATE kck.listeners SET waiting = true WHERE NOT waiting;

-- For kck.queue_refresh (capture functions inline the same look).
-- SECURITY DEFINER: reading a sequence needs a privilege of its own.
CREATE OR REPLACE FUNCTION kck.must_notify() RETURNS boolean
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN (SELECT last_value = 1 FROM kck.daemon_waiting);
END $$;

CREATE OR REPLACE FUNCTION kck.listener_register(p_id bigint) RETURNS void
  LANGUAGE sql AS $$
  DELETE FROM kck.listeners l
   WHERE l.id <> p_id AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.id);
  INSERT INTO kck.listeners (id) VALUES (p_id) ON CONFLICT (id) DO UPDATE SET since = now();
$$;

-- Whether a change waits for a daemon to claim it: the look of an idle
-- daemon (below) and of its rechecks. sql/007_claims.sql leaves out the
-- changes a daemon has already claimed.
CREATE FUNCTION kck.outbox_pending() RETURNS boolean
  LANGUAGE sql STABLE AS $$ SELECT EXISTS (SELECT 1 FROM kck.changes) $$;

CREATE OR REPLACE FUNCTION kck.listener_recheck(p_xids xid8[], OUT pending boolean, OUT open_xids xid8[])
  LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  open_xids := ARRAY(SELECT x FROM unnest(p_xids) AS x WHERE pg_xact_status(x) = 'in progress');
  pending := kck.outbox_pending();
END $$;

-- A daemon with nothing left to do: sets the flag, then looks at the
-- outbox. With changes pending it stays busy (and clears the flag);
-- otherwise it returns the transactions still open at the look, whose
-- changes may come without a notification. SECURITY DEFINER: setval needs
-- UPDATE on the sequence, which "ON ALL TABLES" grants do not give.
CREATE OR REPLACE PROCEDURE kck.listener_idle(p_id bigint, INOUT pending boolean DEFAULT NULL,
                                              INOUT open_xids xid8[] DEFAULT NULL)
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  snap pg_snapshot;
  next_xid xid8;
BEGIN
  -- Set only when it changes: setval writes WAL.
  IF (SELECT last_value FROM kck.daemon_waiting) <> 1 THEN
    PERFORM setval('kck.daemon_waiting', 1);
  END IF;
  -- The snapshot comes after the flag: a writer that read the flag before
  -- it was set is either committed in it or still open.
  snap := pg_current_snapshot();
  pending := kck.outbox_pending();
  IF pending THEN
    PERFORM setval('kck.daemon_waiting', 0);
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

-- A daemon that stops cleanly removes its row; the last one clears the
-- flag, so that writers stop notifying nobody. (A daemon killed outright
-- leaves it set: writers notify until a daemon connects and goes busy.)
CREATE OR REPLACE FUNCTION kck.listener_unregister(p_id bigint) RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  DELETE FROM kck.listeners WHERE id = p_id;
  IF NOT EXISTS (SELECT 1 FROM kck.listeners l JOIN pg_stat_activity a ON a.pid = l.id) THEN
    PERFORM setval('kck.daemon_waiting', 0);
  END IF;
END $$;
