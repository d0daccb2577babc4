-- Every stored key of a primer ($1): what a change maps to when its rule
-- cannot say which key (a partial match, TRUNCATE, a degraded capture).
SELECT key FROM kck.cache WHERE primer = $1
