-- Changes older than a batch's first ($1) that are still in the outbox,
-- with the claim that holds each (NULL: none): another daemon is computing
-- it, or it committed after the batch's claim, or the claim took a later
-- part of the outbox first. The keys they map to wait for an earlier claim
-- or are recomputed, so that each key's changes apply in id order
-- (listener/augment_order.cc). $2 caps the rows read (no order needed: more
-- than the cap means every key is recomputed).
WITH held AS (SELECT k.id AS claim, unnest(k.ids) AS change FROM kck.claims k)
SELECT c.id, c.tbl, c.op, c.old::text, c.new::text, c.txid::text, h.claim
  FROM kck.changes c
  LEFT JOIN held h ON h.change = c.id
 WHERE c.id < $1::bigint
 LIMIT $2::int
