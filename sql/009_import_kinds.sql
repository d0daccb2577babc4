-- Schema version 9: primers of kind http and command (remote imports,
-- primers/import_spec.h) are registered beside sql and python ones.
ALTER TABLE kck.primers DROP CONSTRAINT primers_engine_check;
ALTER TABLE kck.primers ADD CONSTRAINT primers_engine_check
  CHECK (engine IN ('sql', 'python', 'http', 'command'));
