-- A fast write that augments goes on only when no change older than the
-- batch's first ($1) is still in the outbox: such a change applies after
-- the batch's, so the keys it maps to wait for its claim or are recomputed
-- (listener/augment_order.cc), which the normal path decides. Otherwise the
-- transaction fails (SQLSTATE KCK02) and the batch goes the normal way.
SELECT kck.expect_one_row(CASE WHEN EXISTS (SELECT FROM kck.changes WHERE id < $1::bigint) THEN 0 ELSE 1 END,
                          '(older changes are in the outbox)')
