-- kck install registers (or updates) one primer: $1 name, $2 spec, $3 engine.
INSERT INTO kck.primers (name, spec, engine) VALUES ($1, $2::jsonb, $3)
ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, engine = excluded.engine, updated_at = now()
