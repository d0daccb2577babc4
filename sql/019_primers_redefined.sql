-- Schema 19: products of a redefined primer are recomputed.
--
-- Until now `kck install` registered a primer's new definition and left its
-- stored products as the old one had computed them: silently wrong until a
-- change reached each of them or refresh_every came. Install now queues a
-- refresh request for the whole primer, {"primer": P} in kck.changes (with
-- tbl = 'kck.refresh', beside the per-key {"key": K}): the daemon lists
-- every stored product of P under P's lock and recomputes it
-- (listener/planner.cc).
--
-- A daemon that loaded the old definition may still be computing a batch
-- with it, and with several daemons it could write that batch after another
-- daemon recomputed the same keys the new way. So every write transaction
-- of a daemon calls kck.expect_generation with the registry generation it
-- loaded its primers at: a generation that moved (any kck install that
-- changed a primer) rolls the batch back, SQLSTATE KCK03, a transient
-- failure that is never a primer's error, and the daemon reloads its
-- primers and claims the batch's changes again.
CREATE FUNCTION kck.expect_generation(g bigint) RETURNS boolean
  LANGUAGE plpgsql STABLE AS $$
DECLARE
  now_g bigint := (SELECT r.generation FROM kck.registry_generation r);
BEGIN
  IF now_g IS DISTINCT FROM g THEN
    RAISE EXCEPTION 'the primers changed since they were loaded (registry generation % then, % now)', g, now_g
      USING ERRCODE = 'KCK03';
  END IF;
  RETURN true;
END $$;
