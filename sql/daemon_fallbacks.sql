-- Augments that fell back to a recompute in a batch, per primer: $1
-- primers (sorted, so daemons lock the rows in one order), $2 counts, $3 the
-- last reason.
INSERT INTO kck.primer_stats AS s (primer, augment_fallbacks, last_fallback, last_fallback_at)
SELECT u.primer, u.n, u.last, now()
  FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u (primer, n, last)
ON CONFLICT (primer) DO UPDATE
   SET augment_fallbacks = s.augment_fallbacks + excluded.augment_fallbacks,
       last_fallback = excluded.last_fallback, last_fallback_at = excluded.last_fallback_at
