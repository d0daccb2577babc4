-- The daemon removes the products whose compute found nothing (a SQL compute
-- with no row, a Python compute that raised ObjectDoesNotExist): $1 keys. It
-- runs in the batch transaction, before COMMIT; the kck.cache capture records
-- the deletions, so products that depend on them are recomputed like after
-- any write.
DELETE FROM kck.cache WHERE key = ANY ($1::text[])
