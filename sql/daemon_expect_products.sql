-- In the write transaction, after the keys' locks: fails with SQLSTATE
-- KCK01 unless every key ($1) is stored as the batch's first read found it
-- ($2: the row's xmin, '' for none; sql/010_cheaper_batches.sql).
SELECT kck.expect_products($1::text[], $2::text[])
