-- The outbox in three parts that take turns, with no index, so that it stays
-- small while another transaction (an analytics query, pg_dump) holds back
-- the xmin horizon, and costs writers less.
--
-- A DELETE-consumed table keeps every deleted row while the horizon is held
-- (issue 8 measured 55 MB and a 116 ms claim), and its id index costs every
-- writer about a tenth of its throughput. Instead, a capture writes to the
-- part of its transaction's start time (kck.outbox_part(): two seconds
-- each, in turn), and the daemons truncate a part that is no longer written
-- to once all its changes are consumed (kck.outbox_truncate(), every
-- second): TRUNCATE frees the space whatever the horizon. The daemons still
-- claim changes by deleting them (kck.claim_changes, below).
--
-- Correctness does not depend on which part a change lands in: a part is
-- truncated only under its ACCESS EXCLUSIVE lock, after a look with a new
-- snapshot found no row in it. Holding that lock, no writer and no claim is
-- in flight on it, so every row it ever got is committed (and seen) or gone.

ALTER TABLE kck.changes RENAME TO changes_before_005;
ALTER TABLE kck.changes_before_005 ALTER COLUMN id DROP DEFAULT;
ALTER SEQUENCE kck.changes_id_seq OWNED BY NONE;

CREATE TABLE kck.changes (
  id    bigint NOT NULL DEFAULT nextval('kck.changes_id_seq'),
  tbl   text NOT NULL,
  op    char(1) NOT NULL CHECK (op IN ('I', 'U', 'D', 'T')),
  old   jsonb,
  new   jsonb,
  txid  xid8 NOT NULL DEFAULT pg_current_xact_id(),
  at    timestamptz NOT NULL DEFAULT now()
);
ALTER SEQUENCE kck.changes_id_seq OWNED BY kck.changes.id;
CREATE TABLE kck.changes_0 () INHERITS (kck.changes);
CREATE TABLE kck.changes_1 () INHERITS (kck.changes);
CREATE TABLE kck.changes_2 () INHERITS (kck.changes);
-- Claims delete a few rows at a time; autovacuum on the parts is only for
-- when the daemons cannot truncate (several of them always mid-batch).
ALTER TABLE kck.changes_0 SET (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 10000);
ALTER TABLE kck.changes_1 SET (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 10000);
ALTER TABLE kck.changes_2 SET (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 10000);

-- The part a transaction writes to: its start time in two-second steps.
-- Capture functions inline the same expression (triggers/capture.cc).
CREATE FUNCTION kck.outbox_part() RETURNS int
  LANGUAGE sql STABLE AS $$ SELECT (floor(date_part('epoch', now()) / 2)::bigint % 3)::int $$;

-- Anything written to the parent itself (refresh requests, a capture
-- function installed before this migration, a person) goes to the part.
CREATE FUNCTION kck.changes_into_part() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  CASE kck.outbox_part()
  WHEN 0 THEN INSERT INTO kck.changes_0 SELECT NEW.*;
  WHEN 1 THEN INSERT INTO kck.changes_1 SELECT NEW.*;
  ELSE INSERT INTO kck.changes_2 SELECT NEW.*;
  END CASE;
  RETURN NULL;
END $$;
CREATE TRIGGER outbox_into_part BEFORE INSERT ON kck.changes
  FOR EACH ROW EXECUTE FUNCTION kck.changes_into_part();

INSERT INTO kck.changes (id, tbl, op, old, new, txid, at)
  SELECT id, tbl, op, old, new, txid, at FROM kck.changes_before_005;
DROP TABLE kck.changes_before_005;

-- Truncates the parts that are not being written to and hold no pending
-- change; returns how many. A part someone holds a lock on (a writer still
-- in its transaction, a daemon mid-batch) is left for the next call: never
-- wait, so that no writer ever queues behind this. SECURITY DEFINER: the
-- daemon needs no TRUNCATE privilege.
CREATE FUNCTION kck.outbox_truncate() RETURNS int
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  writing int := kck.outbox_part();
  part regclass;
  pending boolean;
  emptied int := 0;
BEGIN
  -- The look under the lock needs a new snapshot: in REPEATABLE READ it
  -- would be the transaction's first, taken before the lock.
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RETURN 0;
  END IF;
  FOR p IN 0..2 LOOP
    CONTINUE WHEN p = writing;
    part := format('kck.changes_%s', p)::regclass;
    CONTINUE WHEN pg_relation_size(part) = 0;
    BEGIN
      EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE NOWAIT', part);
      -- A new snapshot, taken under the lock: every writer of the part has ended.
      EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s)', part) INTO pending;
      IF NOT pending THEN
        EXECUTE format('TRUNCATE %s', part);
        emptied := emptied + 1;
      END IF;
    EXCEPTION WHEN lock_not_available THEN
      NULL;
    END;
  END LOOP;
  RETURN emptied;
END $$;

-- Claims up to n changes no other daemon holds, deleting them in the
-- caller's transaction (sql/daemon_claim.sql), the oldest part first and
-- each part in its physical order, which is nearly insertion order. No
-- sort of the whole outbox: after an outage of a million changes a claim
-- still reads about a batch of rows (and the dead ones before them), and
-- it skips truncated parts and stops at a full batch, so the parts it does
-- not read can be truncated while the batch runs. The batch is put in id
-- order for the planner (listener/intake.cc); a change older than the
-- batch's first that is still pending keeps the keys it maps to from being
-- augmented (sql/daemon_older.sql).
CREATE FUNCTION kck.claim_changes(n int)
  RETURNS TABLE (id bigint, tbl text, op char(1), old text, new text, txid text)
  LANGUAGE plpgsql AS $$
DECLARE
  writing int := kck.outbox_part();
  part int;
  wanted int := n;
  got int;
BEGIN
  FOR turn IN 1..3 LOOP
    EXIT WHEN wanted <= 0;
    part := (writing + turn) % 3;  -- written two turns ago, then one, then now
    -- pg_relation_size takes no lock it keeps: an empty part stays unlocked.
    CONTINUE WHEN pg_relation_size(format('kck.changes_%s', part)::regclass) = 0;
    CASE part
    WHEN 0 THEN
      RETURN QUERY DELETE FROM kck.changes_0 c
        WHERE c.ctid = ANY (ARRAY (SELECT x.ctid FROM kck.changes_0 x LIMIT wanted FOR UPDATE SKIP LOCKED))
        RETURNING c.id, c.tbl, c.op, c.old::text, c.new::text, c.txid::text;
    WHEN 1 THEN
      RETURN QUERY DELETE FROM kck.changes_1 c
        WHERE c.ctid = ANY (ARRAY (SELECT x.ctid FROM kck.changes_1 x LIMIT wanted FOR UPDATE SKIP LOCKED))
        RETURNING c.id, c.tbl, c.op, c.old::text, c.new::text, c.txid::text;
    ELSE
      RETURN QUERY DELETE FROM kck.changes_2 c
        WHERE c.ctid = ANY (ARRAY (SELECT x.ctid FROM kck.changes_2 x LIMIT wanted FOR UPDATE SKIP LOCKED))
        RETURNING c.id, c.tbl, c.op, c.old::text, c.new::text, c.txid::text;
    END CASE;
    GET DIAGNOSTICS got = ROW_COUNT;
    wanted := wanted - got;
  END LOOP;
END $$;

-- FOUND cannot say whether the insert into the parent wrote a row (its
-- trigger moves each to a part): wake on any request.
CREATE OR REPLACE FUNCTION kck.queue_refresh(keys text[]) RETURNS void
  LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO kck.changes (tbl, op, new)
    SELECT 'kck.refresh', 'U', jsonb_build_object('key', k) FROM unnest(keys) AS k;
  IF cardinality(keys) > 0 AND kck.must_notify() THEN
    PERFORM pg_notify('kck', '');
  END IF;
END $$;
