-- Nothing left to do: set the wake-up flag, then look at the outbox
-- (sql/007_claims.sql). Returns whether unclaimed changes are pending and,
-- if not, the transactions still open at the look (listener/wakeup.h).
CALL kck.listener_idle($1::bigint)
