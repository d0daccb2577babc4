-- kck status: the daemons connected now, whether writers wake them, and the
-- last minute of their work summed (sql/008_daemon_stats.sql); the window is
-- the longest any of them has counted (up to 60 s).
SELECT count(*), kck.must_notify(),
       coalesce(max((l.stats->>'window_s')::float8), 0),
       coalesce(sum((l.stats->>'changes')::bigint), 0),
       coalesce(sum((l.stats->>'products')::bigint), 0),
       coalesce(sum((l.stats->>'augmented')::bigint), 0),
       coalesce(sum((l.stats->>'augment_fallbacks')::bigint), 0),
       coalesce(sum((l.stats->>'unchanged')::bigint), 0),
       coalesce(sum((l.stats->>'fresh')::bigint), 0),
       coalesce(sum((l.stats->>'removed')::bigint), 0),
       coalesce(sum((l.stats->>'errors')::bigint), 0)
  FROM kck.listeners l
  JOIN pg_stat_activity a ON a.pid = l.id
