-- While transactions open at the idle look ($1) still run: is an unclaimed
-- change pending, and which of them are still open?
SELECT pending, open_xids::text FROM kck.listener_recheck($1::xid8[])
