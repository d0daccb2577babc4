-- The registry generation (sql/003_generation_and_primer_locks.sql): read
-- with the primers, and again in every batch's claim round trip.
SELECT generation FROM kck.registry_generation
