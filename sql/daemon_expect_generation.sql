-- In every write transaction of a batch, after the keys' locks: fails with
-- SQLSTATE KCK03 unless the primers are still those of registry generation
-- $1, the one the daemon loaded (sql/019_primers_redefined.sql).
SELECT kck.expect_generation($1::bigint)
