-- The daemon's last minute ($2, JSON from listener/summary.h) in its row of
-- kck.listeners ($1: its listening backend's pid), for kck status.
UPDATE kck.listeners SET stats = $2::jsonb, stats_at = now() WHERE id = $1::bigint
