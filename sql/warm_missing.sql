-- kck warm (cli/warm.cc): the keys of $1 that are not stored yet, in their
-- order.
SELECT k FROM unnest($1::text[]) WITH ORDINALITY AS u (k, o)
 WHERE NOT EXISTS (SELECT 1 FROM kck.cache c WHERE c.key = u.k)
 ORDER BY o
