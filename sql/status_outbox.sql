-- kck status: the outbox's depth, the age of its oldest change and the
-- space its parts take, and how many of its changes batches in flight have
-- claimed. Counted exactly: without an index the count is one scan, and the
-- parts hold only pending changes and the few seconds of consumed ones that
-- have not been truncated yet (sql/005_outbox_parts.sql).
SELECT count(*), coalesce(extract(epoch FROM now() - min(at)), 0)::float8,
       (SELECT sum(pg_relation_size(inhrelid)) FROM pg_inherits WHERE inhparent = 'kck.changes'::regclass)::bigint,
       (SELECT coalesce(sum(cardinality(k.ids)), 0) FROM kck.claims k)::bigint,
       (SELECT count(*) FROM kck.claims k)
  FROM kck.changes
