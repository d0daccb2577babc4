-- kck install gives a primer registered before schema 11, whose spec has not
-- changed, its compute for Django: $1 name, $2 the statement
-- (sql/011_client_compute.sql).
UPDATE kck.primers SET client_compute = $2 WHERE name = $1
