-- kck install, before it probes the C capture (triggers/installer.cc): the
-- file of library $1 when it lies under $libdir, and whether the server
-- has it (".so" added as PostgreSQL adds it). Only for a superuser: C
-- functions need one, and pg_config and pg_stat_file are theirs. (The
-- record itself IS NULL unless every field is set: creation is NULL here.)
SELECT f.path, (pg_stat_file(f.path, true)).size IS NOT NULL
  FROM (SELECT setting || substr($1, 8) || CASE WHEN $1 LIKE '%.so' THEN '' ELSE '.so' END AS path
          FROM pg_config WHERE name = 'PKGLIBDIR') f
