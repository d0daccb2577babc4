-- kck schema, version 1. Run once by kck install (see primers/installer.cc);
-- later changes go into new numbered files, never into this one.

CREATE TABLE kck.cache (
  key         text PRIMARY KEY,
  primer      text NOT NULL,
  value       jsonb,
  version     bigint NOT NULL DEFAULT 1,
  computed_at timestamptz,
  soft_expire timestamptz,
  hard_expire timestamptz,
  compute_ms  double precision,
  error       text,
  -- The snapshot the last full compute read. An augment applies a change
  -- only when the change's transaction is not visible in it, so a change
  -- that a compute already saw is never applied twice.
  snapshot    pg_snapshot
);
CREATE INDEX cache_primer_idx ON kck.cache (primer);

-- The durable outbox, written by capture triggers in the source transaction.
-- old/new hold one row image (object) per source row, or, for a bulk
-- statement, an array of the distinct images of the captured columns.
CREATE TABLE kck.changes (
  id    bigserial PRIMARY KEY,
  tbl   text NOT NULL,
  op    char(1) NOT NULL CHECK (op IN ('I', 'U', 'D', 'T')),
  old   jsonb,
  new   jsonb,
  txid  xid8 NOT NULL DEFAULT pg_current_xact_id(),
  at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE kck.primers (
  name       text PRIMARY KEY,
  spec       jsonb NOT NULL,
  engine     text NOT NULL CHECK (engine IN ('sql', 'python')),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Capture triggers that kck installed, with the SQL that made them: install
-- compares it to skip unchanged tables, uninstall removes exactly these.
CREATE TABLE kck.triggers (
  tbl          text PRIMARY KEY,
  function     text NOT NULL,
  definition   text NOT NULL,
  installed_at timestamptz NOT NULL DEFAULT now()
);

-- Writers of a product serialize on one of 1024 advisory locks chosen by the
-- key's hash: the daemon takes them for every key a batch touches, a reader
-- that stores a missed product takes its key's. Without this a product
-- computed on a miss could miss a change the daemon dropped because the row
-- did not exist yet.
CREATE FUNCTION kck.bucket(key text) RETURNS integer
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT hashtext(key) & 1023 $$;

CREATE FUNCTION kck.lock_keys(keys text[]) RETURNS void
  LANGUAGE plpgsql AS $$
DECLARE
  b integer;
BEGIN
  FOR b IN SELECT DISTINCT kck.bucket(k) FROM unnest(keys) AS k ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock(7037803, b);
  END LOOP;
END $$;

-- Stores a product computed outside the daemon (a miss, a refresh), unless
-- the stored version moved since the caller read it: expected_version is the
-- version the caller saw, NULL when it saw no row. Call it in the
-- transaction that took kck.lock_keys for the key. Returns the row that is
-- stored now and whether this call wrote it.
CREATE FUNCTION kck.store(p_key text, p_primer text, p_value jsonb, p_snapshot pg_snapshot,
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
      SET value = excluded.value, version = c.version + 1, computed_at = excluded.computed_at,
          soft_expire = excluded.soft_expire, hard_expire = excluded.hard_expire,
          compute_ms = excluded.compute_ms, error = NULL, snapshot = excluded.snapshot
      WHERE c.version = p_expected_version
    RETURNING c.value, c.version, true;
  IF NOT FOUND THEN
    RETURN QUERY SELECT c.value, c.version, false FROM kck.cache c WHERE c.key = p_key;
  END IF;
END $$;

-- Records that a compute outside the daemon failed: keeps the stored value.
CREATE FUNCTION kck.store_error(p_key text, p_primer text, p_error text) RETURNS void
  LANGUAGE sql AS $$
  UPDATE kck.cache SET error = p_error WHERE key = p_key AND primer = p_primer
$$;

-- Asks the daemon to recompute keys soon (soft expiry, Cache.refresh).
CREATE FUNCTION kck.queue_refresh(keys text[]) RETURNS void
  LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO kck.changes (tbl, op, new)
    SELECT 'kck.refresh', 'U', jsonb_build_object('key', k) FROM unnest(keys) AS k;
  PERFORM pg_notify('kck', '');
END $$;

-- Session-level forms of kck.lock_keys for readers that compute in a
-- REPEATABLE READ transaction (Python primers): take the lock before BEGIN
-- so the transaction's snapshot is taken after it, release after COMMIT.
CREATE FUNCTION kck.lock_key_session(key text) RETURNS void
  LANGUAGE sql AS $$ SELECT pg_advisory_lock(7037803, kck.bucket(key)) $$;
CREATE FUNCTION kck.unlock_key_session(key text) RETURNS boolean
  LANGUAGE sql AS $$ SELECT pg_advisory_unlock(7037803, kck.bucket(key)) $$;
-- Non-blocking form for code already running inside a daemon compute (a
-- Python primer reading another product), which must never wait on a lock
-- the daemon holds: on false, compute without storing.
CREATE FUNCTION kck.try_lock_key(key text) RETURNS boolean
  LANGUAGE sql AS $$ SELECT pg_try_advisory_xact_lock(7037803, kck.bucket(key)) $$;
