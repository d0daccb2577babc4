-- Schema 17: the outbox's parts take a change as a plain heap tuple.
--
-- The C capture (triggers/capture_module.c) writes a change into its part
-- as a heap tuple, with the defaults the INSERT would give it, when the
-- part is only that: no index, trigger, rule, row security or check
-- constraint. Otherwise it runs the INSERT through SPI, whose executor
-- start-up, and the check constraint on `op` that PostgreSQL parses and
-- plans again at every INSERT, cost a writer at 8 pgbench clients about a
-- tenth of what the whole statement costs the server. The check goes:
-- only kck's captures and kck.queue_refresh write the outbox, and the
-- daemon reads an op other than I, U, D and T as a TRUNCATE of the table
-- (every product that depends on it is recomputed) and reports it.
DO $$
DECLARE
  c record;
BEGIN
  FOR c IN SELECT conrelid::regclass AS tbl, conname FROM pg_constraint
           WHERE conrelid IN ('kck.changes'::regclass, 'kck.changes_0'::regclass, 'kck.changes_1'::regclass,
                              'kck.changes_2'::regclass)
             AND contype = 'c' AND conislocal
           ORDER BY conrelid = 'kck.changes'::regclass DESC LOOP
    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', c.tbl, c.conname);
  END LOOP;
END $$;
