-- What is live of a capture trigger: the function's source ($1, e.g.
-- kck."capture:public.store_book"()) and how many of its four triggers on
-- table $2 exist and are enabled.
SELECT (SELECT prosrc FROM pg_proc WHERE oid = to_regprocedure($1)),
       (SELECT count(*) FROM pg_trigger
         WHERE tgrelid = to_regclass($2) AND tgname LIKE 'kck\_capture\_%' AND tgenabled <> 'D')
