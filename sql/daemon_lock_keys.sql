-- The settle's key locks ($1, the batch's keys), in the write transaction
-- (sql/003_generation_and_primer_locks.sql).
SELECT kck.lock_buckets($1::text[])
