// Intake: a batch's changes from the outbox (kck.changes and its parts,
// sql/005_outbox_parts.sql), decoded into Change values for the planner.
//
// The claim deletes the changes in the batch transaction, so they are
// consumed only if the batch's cache writes commit (sql/daemon_claim.sql).
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
};

// BEGIN, the registry generation and the claim of up to `batch_size`
// changes, in one round trip. The transaction stays open on `conn`; on
// failure the caller rolls it back.
Task<StatusOr<Claimed>> Claim(AsyncConnection& conn, int batch_size);

// Up to `limit` changes older than `before` that are still in the outbox
// (another daemon holds them, or they committed after this batch's claim).
Task<StatusOr<std::vector<Change>>> OlderChanges(AsyncConnection& conn, long long before, int limit);

}  // namespace kck
