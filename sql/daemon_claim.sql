-- The daemon claims a batch: up to $1 (its --batch) changes no other daemon
-- holds, oldest part first (kck.claim_changes, sql/005_outbox_parts.sql).
-- They are deleted in the batch transaction, so they are consumed only if
-- the batch's cache writes commit. Sent right after BEGIN, in one round trip.
SELECT id, tbl, op, old, new, txid FROM kck.claim_changes($1::int)
