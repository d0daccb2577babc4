-- The settle's primer locks ($1: the primers a batch lists every stored key
-- of), taken before the key locks, in one order for every daemon
-- (sql/003_generation_and_primer_locks.sql).
SELECT kck.lock_primers($1::text[])
