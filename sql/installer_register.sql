-- kck install registers (or updates) one primer: $1 name, $2 spec, $3 engine,
-- $4 its compute for Django (NULL but for sql primers; sql/011_client_compute.sql).
INSERT INTO kck.primers (name, spec, engine, client_compute) VALUES ($1, $2::jsonb, $3, $4)
ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, engine = excluded.engine,
  client_compute = excluded.client_compute, updated_at = now()
