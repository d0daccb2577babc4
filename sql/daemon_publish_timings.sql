-- What this daemon timed per primer since it last published ($2:
-- {"<primer>": {"compute_ms", ...}}, listener/primer_timings.h), each
-- stamped with the md5 of its primer's definition, for the daemons that
-- start after it (sql/daemon_primer_timings.sql). Only while the primers
-- are those it loaded (registry generation $1): a time measured with a
-- primer's old SQL says nothing of its new SQL. Rows in name order, as
-- sql/daemon_fallbacks.sql takes them.
INSERT INTO kck.primer_stats AS s (primer, timings)
SELECT p.name, t.value || jsonb_build_object('spec', md5(p.spec::text))
  FROM jsonb_each($2::jsonb) AS t (name, value)
  JOIN kck.primers p ON p.name = t.name
 WHERE (SELECT g.generation FROM kck.registry_generation g) = $1::bigint
 ORDER BY p.name
ON CONFLICT (primer) DO UPDATE SET timings = excluded.timings
