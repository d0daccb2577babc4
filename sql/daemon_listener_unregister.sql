-- On a clean stop: the daemon's row goes; the last daemon clears the
-- wake-up flag, so that writers stop notifying nobody.
SELECT kck.listener_unregister($1::bigint)
