-- A batch that rolled back gives its claim up: its changes are claimed
-- again (by this daemon's next batch or another's).
DELETE FROM kck.claims WHERE id = $1::bigint
