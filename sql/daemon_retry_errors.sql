-- A primer's probe computed again: a refresh request for each of its other
-- products in error ($1 the primer). Returns how many.
SELECT cardinality(x.keys), kck.queue_refresh(x.keys)
  FROM (SELECT ARRAY(SELECT c.key FROM kck.cache c WHERE c.primer = $1 AND c.error IS NOT NULL) AS keys) x
