-- Schema 22: kck status names every column a capture reads that its table
-- lost.
--
-- kck.registry_problems() compared the columns the primers name (params,
-- columns, augment fields) with the catalog, but a capture also reads its
-- table's primary key and the update_of columns: with one of those dropped
-- or renamed, every write to the table degraded to a whole-table change and
-- the daemon said "see kck status", where nothing was shown. kck install
-- now records the columns each capture reads (kck.triggers.columns), and
-- the function reports those the table no longer has.
ALTER TABLE kck.triggers ADD COLUMN columns text[];

CREATE OR REPLACE FUNCTION kck.registry_problems()
  RETURNS TABLE (primer text, problem text, hint text)
  LANGUAGE sql STABLE AS $$
WITH rules AS (
  -- Table rules, with the table resolved the way install qualified it (schema.name).
  SELECT p.name AS primer, p.spec, r.rule, r.i - 1 AS i, r.rule->>'table' AS tbl, t.oid AS rel,
         CASE WHEN p.spec->>'source' = 'django' THEN 'manage.py kck_sync' ELSE 'kck install' END AS fix
    FROM kck.primers p
   CROSS JOIN LATERAL jsonb_array_elements(p.spec->'depends_on') WITH ORDINALITY AS r (rule, i)
    LEFT JOIN LATERAL (
      SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = split_part(r.rule->>'table', '.', 1)
         AND c.relname = substr(r.rule->>'table', strpos(r.rule->>'table', '.') + 1)
         AND c.relkind IN ('r', 'p')) t ON true
   WHERE r.rule ? 'table'
),
-- Columns each rule maps (params) or captures (columns), and the fields
-- augment SQL reads as :new->>'col' / :old->>'col'.
wanted AS (
  SELECT primer, fix, rel, tbl, format('depends_on[%s]', i) AS field, col
    FROM rules, jsonb_each_text(CASE WHEN jsonb_typeof(rule->'params') = 'object' THEN rule->'params' ELSE '{}' END)
                AS m (param, col)
   WHERE rel IS NOT NULL
  UNION ALL
  SELECT primer, fix, rel, tbl, format('depends_on[%s]', i), col
    FROM rules, jsonb_array_elements_text(CASE WHEN jsonb_typeof(rule->'columns') = 'array' THEN rule->'columns'
                                               ELSE '[]' END) AS c (col)
   WHERE rel IS NOT NULL
  UNION ALL
  SELECT DISTINCT r.primer, r.fix, r.rel, r.tbl, format('augment.%s.%s', r.tbl, a.op), m.f[2]
    FROM rules r
   CROSS JOIN LATERAL jsonb_each_text(CASE WHEN jsonb_typeof(r.spec->'augment'->r.tbl) = 'object'
                                           THEN r.spec->'augment'->r.tbl ELSE '{}' END) AS a (op, sql)
   CROSS JOIN LATERAL regexp_matches(a.sql, ':(old|new)\s*->>?\s*''([^'']+)''', 'g') AS m (f)
   WHERE r.rel IS NOT NULL
)
SELECT primer, problem, hint FROM (
  SELECT primer, format('depends_on[%s]: table "%s" does not exist', i, tbl) AS problem,
         format('fix the primer (or restore the table) and run %s', fix) AS hint
    FROM rules WHERE rel IS NULL
  UNION
  SELECT primer, format('%s: table "%s" has no column "%s"', field, tbl, col),
         format('its products are recomputed on every change to the table; fix the primer and run %s', fix)
    FROM wanted w
   WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a
                      WHERE a.attrelid = w.rel AND a.attname = w.col AND a.attnum > 0 AND NOT a.attisdropped)
  UNION
  -- What else the table's capture reads (its primary key, update_of
  -- columns): once per table and column, under the first primer of it.
  SELECT * FROM (
    SELECT DISTINCT ON (r.tbl, c.col) r.primer,
           format('depends_on[%s]: the capture of table "%s" reads column "%s", which the table no longer has',
                  r.i, r.tbl, c.col),
           format('every write to the table recomputes every product that depends on it; restore the column, or '
                  'fix the primers and run %s', r.fix)
      FROM rules r
      JOIN kck.triggers t ON t.tbl = r.tbl
     CROSS JOIN LATERAL unnest(t.columns) AS c (col)
     WHERE r.rel IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                        WHERE a.attrelid = r.rel AND a.attname = c.col AND a.attnum > 0 AND NOT a.attisdropped)
       AND NOT EXISTS (SELECT 1 FROM wanted w WHERE w.rel = r.rel AND w.col = c.col)
     ORDER BY r.tbl, c.col, r.primer, r.i) capture_reads
) problems
ORDER BY primer, problem
$$;
