-- The stored rows of a batch's keys ($1). Values travel only for the keys
-- that may be augmented ($2): a recompute does not need the old one.
SELECT key, CASE WHEN key = ANY ($2::text[]) THEN value::text END, snapshot::text, xmin::text
  FROM kck.cache
 WHERE key = ANY ($1::text[])
