-- Schema 13: the upkeep truncates kck.claims only once it takes 256 kB.
--
-- Every batch inserts one claim row and deletes it when written, so the
-- table was never empty of dead rows and the upkeep truncated it every
-- second (sql/007_claims.sql). A TRUNCATE costs 2-3 ms here (four new
-- files: heap, toast, toast index, primary key), and the upkeep runs
-- between batches: a pause that changes arriving meanwhile wait through.
-- Below 256 kB (about 1500 dead claims) the claims' scan of kck.claims
-- costs little, and autovacuum keeps the table smaller than that unless
-- the xmin horizon is held, which is when the truncation still bounds it.
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
  IF pg_relation_size('kck.claims') >= 262144 THEN
    emptied := emptied + kck.truncate_if_empty('kck.claims')::int;
  END IF;
  RETURN emptied;
END $$;
