-- A fast write's statement_timeout ($1, ms) for the rest of its transaction
-- (listener/fast_write.cc).
SELECT set_config('statement_timeout', $1, true)
