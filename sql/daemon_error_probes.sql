-- One product in error per primer, to try again (listener/error_retry.h;
-- the partial index of sql/020_error_index.sql).
SELECT DISTINCT ON (primer) primer, key FROM kck.cache WHERE error IS NOT NULL ORDER BY primer, key
