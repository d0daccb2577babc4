-- kck explain: the changes in the outbox (at most $1), and whether a
-- daemon's claim holds each (sql/007_claims.sql).
WITH held AS (SELECT unnest(k.ids) AS change FROM kck.claims k)
SELECT c.id, c.tbl, c.op, c.old::text, c.new::text, c.txid::text, c.id IN (SELECT change FROM held)
  FROM kck.changes c
 LIMIT $1::int
