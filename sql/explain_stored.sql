-- kck explain: the stored row of a key ($1).
SELECT version, computed_at::text, extract(epoch FROM now() - computed_at)::float8, compute_ms, error,
       octet_length(value::text), soft_expire::text, hard_expire::text
  FROM kck.cache
 WHERE key = $1
