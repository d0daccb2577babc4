-- Schema 20: products in error, indexed.
--
-- A daemon tries one product in error per primer again once a minute
-- (listener/error_retry.h), and kck status lists them: both read only the
-- rows with an error, which this partial index holds (none, usually).
CREATE INDEX cache_error_idx ON kck.cache (primer, key) WHERE error IS NOT NULL;
