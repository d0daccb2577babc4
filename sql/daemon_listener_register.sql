-- On every connect: the daemon's listening backend ($1, its pid) in
-- kck.listeners; rows of daemons that are gone are removed (sql/006_wake_flag.sql).
SELECT kck.listener_register($1::bigint)
