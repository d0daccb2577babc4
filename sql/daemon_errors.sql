-- Failed computes of a batch: $1 keys, $2 one-line errors. The stored value
-- and version stay as they were.
UPDATE kck.cache c SET error = u.error
  FROM unnest($1::text[], $2::text[]) AS u (key, error)
 WHERE c.key = u.key
