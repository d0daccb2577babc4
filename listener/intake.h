// Intake: a batch's changes from the outbox (kck.changes and its parts,
// sql/005_outbox_parts.sql), decoded into Change values for the planner.
//
// The claim is noted in kck.claims and committed at once (sql/007_claims.sql):
// no transaction stays open while the batch computes. The changes are
// consumed by the batch's write transaction (listener/writer.h), or given
// back with Release when the batch rolls back.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "common/task.h"
#include "listener/planner.h"
#include "pg/async_connection.h"

namespace kck {

struct Claimed {
  std::vector<Change> changes;  // in id order
  int64_t generation = 0;       // the registry generation read in the same round trip
  int64_t claim = 0;            // kck.claims id; 0 when nothing was claimed
};

// The registry generation and the claim of up to `batch_size` changes, in
// one committed transaction and one round trip. On failure nothing is
// claimed (or the claim's connection is gone, and the claim with it).
Task<StatusOr<Claimed>> Claim(AsyncConnection& conn, int batch_size);

// Row `i` of an outbox query: columns id, tbl, op, old, new, txid (as
// text) from column `at` on, as every query of the outbox returns them.
Change ChangeFromRow(const pg::Result& rows, int i, int at);

// Gives a claim up (autocommit); 0 is no claim. A failure is logged: a
// claim that stays is released once its connection is gone.
Task<void> Release(AsyncConnection& conn, int64_t claim);

// Up to `limit` changes older than `before` that are still in the outbox
// (another daemon's claim holds them, or they committed after this
// batch's claim), with the claim holding each (0: none).
struct Older {
  std::vector<Change> changes;
  std::vector<int64_t> claims;
};
Task<StatusOr<Older>> OlderChanges(AsyncConnection& conn, long long before, int limit);

}  // namespace kck
