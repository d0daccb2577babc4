-- kck status: per primer, its stored products, those in error, the last
-- refresh, and the augments that fell back to a recompute (with the last
-- reason).
SELECT p.name, p.engine, count(c.key), count(c.error), max(c.computed_at)::text,
       coalesce(max(s.augment_fallbacks), 0), max(s.last_fallback)
  FROM kck.primers p
  LEFT JOIN kck.cache c ON c.primer = p.name
  LEFT JOIN kck.primer_stats s ON s.primer = p.name
 GROUP BY p.name, p.engine
 ORDER BY p.name
