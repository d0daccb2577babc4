-- Each primer's compute time as its stored products last measured it (the
-- most of up to 16 of them, found through cache_primer_idx) and one of their
-- keys: a daemon that starts or reloads its primers begins with these
-- (Executor::Rehearse, listener/fast_write.cc).
SELECT p.name, s.ms, s.key
  FROM kck.primers p
  CROSS JOIN LATERAL (
    SELECT max(c.compute_ms) AS ms, min(c.key) AS key
      FROM (SELECT c.compute_ms, c.key FROM kck.cache c
             WHERE c.primer = p.name AND c.compute_ms IS NOT NULL AND c.error IS NULL
             LIMIT 16) c) s
 WHERE s.key IS NOT NULL
