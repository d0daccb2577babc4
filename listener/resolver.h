// Resolver: the part of planning that needs the database, run in the batch
// transaction before the computes.
//
//   keys rules: SQL given :old/:new (on the compute connection) or the
//     Python worker; a rule that fails for good cannot map its change, so
//     every stored product of its primer is recomputed instead
//   partial matches: the primers' stored keys are listed and matched; the
//     executor lists them again under the primers' locks before it writes
//     (readers hold them shared while they compute a miss), and computes
//     the keys that appeared
//
// A transient failure (lost connection, dead worker) fails the whole
// resolve: the batch rolls back and is claimed again.
#pragma once

#include "pg/async_connection.h"
#include "listener/planner.h"
#include "common/task.h"
#include "listener/worker_pool.h"

namespace kck {

Task<Status> Resolve(Plan& plan, AsyncConnection& main, AsyncConnection& compute, WorkerPool* worker);

// Lists the stored keys of the primers of plan.partial and adds the ones
// that match; with `lock` (listing again, before the writes), takes the
// primers' locks exclusively first and adds only keys not planned yet.
Task<Status> ListPartialMatches(Plan& plan, AsyncConnection& main, bool lock);

}  // namespace kck
