-- kck install records the capture it installed on a table ($1), its
-- function ($2) and the SQL that made it ($3): the next install compares
-- against it, uninstall removes exactly these.
INSERT INTO kck.triggers (tbl, function, definition) VALUES ($1, $2, $3)
ON CONFLICT (tbl) DO UPDATE SET function = excluded.function, definition = excluded.definition, installed_at = now()
