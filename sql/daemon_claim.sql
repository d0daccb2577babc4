-- The daemon claims a batch: the oldest changes no other daemon holds. They
-- are deleted in the batch transaction, so they are consumed only if the
-- batch's cache writes commit. $1 is the daemon's --batch. Sent right
-- after BEGIN, in one round trip.
DELETE FROM kck.changes
 WHERE id IN (SELECT id FROM kck.changes ORDER BY id LIMIT $1::int FOR UPDATE SKIP LOCKED)
RETURNING id, tbl, op, old::text, new::text, txid::text
