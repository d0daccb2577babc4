-- The schema version the daemon's primers were loaded under, read with them
-- (listener/executor.cc): which of kck's checks the schema has (schema 19:
-- kck.expect_generation).
SELECT coalesce(max(version), 0) FROM kck.schema_version
