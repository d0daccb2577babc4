-- The daemon claims a batch: the oldest changes no other daemon holds. They
-- are deleted in the batch transaction, so they are consumed only if the
-- batch's cache writes commit. The LIMIT is the daemon's --batch, put in
-- by listener/executor.cc (an integer, never user text).
BEGIN;
DELETE FROM kck.changes
 WHERE id IN (SELECT id FROM kck.changes ORDER BY id LIMIT {batch} FOR UPDATE SKIP LOCKED)
RETURNING id, tbl, op, old::text, new::text, txid::text
