-- Schema version 3: the registry generation and primer locks.

-- The registry's generation goes up with every statement that writes
-- kck.primers (kck install, manage.py kck_sync). A daemon reads it in each
-- batch transaction: a batch claimed after a registry change but planned with
-- the old primers would map changes with the old rules, so the daemon rolls
-- it back, reloads the primers (and restarts its Python worker, which may
-- run new code) and claims again.
CREATE TABLE kck.registry_generation (
  one        boolean PRIMARY KEY DEFAULT true CHECK (one),
  generation bigint NOT NULL
);
INSERT INTO kck.registry_generation VALUES (true, 1);

CREATE FUNCTION kck.bump_registry_generation() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  UPDATE kck.registry_generation SET generation = generation + 1;
  RETURN NULL;
END $$;

CREATE TRIGGER bump_registry_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kck.primers
  FOR EACH STATEMENT EXECUTE FUNCTION kck.bump_registry_generation();

-- Primer locks close the race of partial matches. A change that maps to
-- "every stored product of primer P that agrees on some parameters" (a
-- params rule that leaves parameters open, TRUNCATE, a degraded capture, a
-- cascade with open parameters) is resolved by listing P's stored keys. A
-- reader computing a missed product of P has not stored it yet, so the
-- listing cannot see it and the key lock cannot help. Readers therefore take
-- P's lock shared, and the daemon takes it exclusively before listing:
-- either the reader's product is stored before the listing, or the reader
-- starts after the daemon's batch and its snapshot sees the change.
CREATE FUNCTION kck.primer_lock_id(primer text) RETURNS integer
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT hashtext(primer) $$;

-- The daemon: exclusive locks on the primers it lists, in one order so that
-- daemons never deadlock on them.
CREATE FUNCTION kck.lock_primers(primers text[]) RETURNS void
  LANGUAGE plpgsql AS $$
DECLARE
  id integer;
BEGIN
  FOR id IN SELECT DISTINCT kck.primer_lock_id(p) FROM unnest(primers) AS p ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock(7037804, id);
  END LOOP;
END $$;

-- The daemon: key locks only (it takes primer locks itself, before these).
CREATE FUNCTION kck.lock_buckets(keys text[]) RETURNS void
  LANGUAGE plpgsql AS $$
DECLARE
  b integer;
BEGIN
  FOR b IN SELECT DISTINCT kck.bucket(k) FROM unnest(keys) AS k ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock(7037803, b);
  END LOOP;
END $$;

-- Readers: the primer lock shared, then the key lock.
CREATE OR REPLACE FUNCTION kck.lock_keys(keys text[]) RETURNS void
  LANGUAGE plpgsql AS $$
DECLARE
  id integer;
BEGIN
  FOR id IN SELECT DISTINCT kck.primer_lock_id(split_part(k, '/', 1)) FROM unnest(keys) AS k ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock_shared(7037804, id);
  END LOOP;
  PERFORM kck.lock_buckets(keys);
END $$;

CREATE OR REPLACE FUNCTION kck.lock_key_session(key text) RETURNS void
  LANGUAGE sql AS $$
  SELECT pg_advisory_lock_shared(7037804, kck.primer_lock_id(split_part(key, '/', 1)));
  SELECT pg_advisory_lock(7037803, kck.bucket(key))
$$;

-- Both unlocks always run (an AND could skip the second).
CREATE OR REPLACE FUNCTION kck.unlock_key_session(key text) RETURNS boolean
  LANGUAGE sql AS $$
  SELECT bucket AND primer
    FROM (SELECT pg_advisory_unlock(7037803, kck.bucket(key)) AS bucket,
                 pg_advisory_unlock_shared(7037804, kck.primer_lock_id(split_part(key, '/', 1))) AS primer) u
$$;

CREATE OR REPLACE FUNCTION kck.try_lock_key(key text) RETURNS boolean
  LANGUAGE sql AS $$
  SELECT pg_try_advisory_xact_lock_shared(7037804, kck.primer_lock_id(split_part(key, '/', 1)))
     AND pg_try_advisory_xact_lock(7037803, kck.bucket(key))
$$;

-- What the daemons saw go wrong per primer, for kck status: augments that
-- fell back to a recompute (a Python augment that raised, augment SQL that
-- failed) and products that could not be written.
CREATE TABLE kck.primer_stats (
  primer             text PRIMARY KEY,
  augment_fallbacks  bigint NOT NULL DEFAULT 0,
  last_fallback      text,
  last_fallback_at   timestamptz
);
