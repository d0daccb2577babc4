-- kck status: each captured table and the language its capture runs in
-- ('c': triggers/capture_module.c; 'plpgsql': generated), NULL when its
-- function is gone (kck install repairs it).
SELECT t.tbl, l.lanname
  FROM kck.triggers t
  LEFT JOIN pg_proc p ON p.oid = to_regprocedure(t.function || '()')
  LEFT JOIN pg_language l ON l.oid = p.prolang
 ORDER BY t.tbl
