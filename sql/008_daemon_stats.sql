-- Schema version 8: what each daemon did in the last minute, for kck
-- status (issue 10). A daemon writes its row of kck.listeners at most once a
-- second, only when its counts moved (listener/summary.h); writers never
-- read this table (the wake-up flag is a sequence, sql/006_wake_flag.sql),
-- so its row versions cost them nothing while the horizon is held.
ALTER TABLE kck.listeners
  ADD COLUMN stats jsonb,            -- {"window_s", "changes", "products", "augmented", ...}
  ADD COLUMN stats_at timestamptz;
