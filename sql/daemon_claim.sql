-- The daemon claims a batch: up to $1 (its --batch) changes that no other
-- daemon's claim holds, oldest part first (kck.claim_batch,
-- sql/007_claims.sql). Sent with BEGIN and COMMIT in one round trip: the
-- claim is committed before anything is computed, and the changes stay in
-- the outbox until the batch's write transaction consumes them.
SELECT claim, id, tbl, op, old, new, txid FROM kck.claim_batch($1::int)
