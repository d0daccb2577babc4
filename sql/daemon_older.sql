-- Changes older than a batch's first ($1) that are still in the outbox:
-- another daemon holds them, or they committed after the batch's claim, or
-- the claim took a later part of the outbox first. The keys they map to are
-- recomputed, not augmented, so that each key's changes apply in id order.
-- $2 caps the rows read (no order needed: more than the cap means every
-- key is recomputed).
SELECT id, tbl, op, old::text, new::text, txid::text
  FROM kck.changes
 WHERE id < $1::bigint
 LIMIT $2::int
