-- First in a batch's write transaction: deletes the claim and its changes,
-- or fails with SQLSTATE 40001 (the batch rolls back) unless all of them
-- were still there (sql/007_claims.sql).
SELECT kck.consume_claim($1::bigint)
