-- One product in error per primer, to try again (listener/error_retry.h;
-- the partial index of sql/020_error_index.sql). Not those that gave up
-- after repeated timeouts or other transient failures: a probe runs between
-- batches, and one that took the compute timeout would hold them up.
SELECT DISTINCT ON (primer) primer, key
  FROM kck.cache
 WHERE error IS NOT NULL AND error NOT LIKE 'gave up after repeated transient failures%'
 ORDER BY primer, key
