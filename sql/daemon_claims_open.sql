-- How many of the claims $1 are still open (neither written nor released):
-- a batch waits for the earlier claims that hold older changes of keys it
-- augments (listener/augment_order.cc).
SELECT count(*) FROM kck.claims WHERE id = ANY ($1::bigint[])
