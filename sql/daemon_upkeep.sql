-- Once a second, on the listening connection (listener/janitor.h): truncate
-- the consumed outbox parts (and kck.claims when no claim is open), and
-- release the claims of daemons whose backend is gone. Returns how many of
-- each.
SELECT kck.outbox_truncate(), kck.release_orphan_claims()
