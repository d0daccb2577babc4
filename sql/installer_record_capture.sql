-- kck install records the capture it installed on a table ($1), its
-- function ($2), the SQL that made it ($3) and the columns it reads ($4,
-- schema 22, for kck.registry_problems): the next install compares against
-- it, uninstall removes exactly these.
INSERT INTO kck.triggers (tbl, function, definition, columns) VALUES ($1, $2, $3, $4::text[])
ON CONFLICT (tbl) DO UPDATE SET function = excluded.function, definition = excluded.definition,
  columns = excluded.columns, installed_at = now()
