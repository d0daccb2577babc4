-- What the daemons before this one timed per primer (kck.primer_stats,
-- sql/018_primer_timings.sql), for the primers still defined as when they
-- timed them: a daemon that starts or reloads its primers begins with
-- these (Executor::Rehearse, listener/fast_write.cc).
SELECT s.primer, s.timings - 'spec'
  FROM kck.primer_stats s
  JOIN kck.primers p ON p.name = s.primer
 WHERE s.timings->>'spec' = md5(p.spec::text)
