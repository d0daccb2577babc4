// Executor: runs one batch end to end on the daemon's connections.
//
//   BEGIN; claim changes (DELETE ... RETURNING, FOR UPDATE SKIP LOCKED)
//   plan -> lock the keys (kck.lock_keys) -> read stored rows
//   augment or recompute each stored (or forced) key on the compute connection
//   write all values and errors; COMMIT
//
// The claimed changes and the cache writes commit together: a crash at any
// point rolls both back, and the changes are claimed again.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <string_view>

#include "listener/connection.h"
#include "listener/planner.h"
#include "listener/worker_pool.h"
#include "primers/registry.h"

namespace kck {

struct BatchStats {
  size_t changes = 0;    // claimed and consumed
  size_t keys = 0;       // products written
  size_t augmented = 0;  // of which updated in place
  size_t errors = 0;     // computes that failed (value kept, error set)
};

// Whether the transaction `txid` is visible in `snapshot` (pg_snapshot
// text "xmin:xmax:xip,..."): the compute that read the snapshot saw it.
bool VisibleInSnapshot(std::string_view snapshot, uint64_t txid);

class Executor {
 public:
  // `main` runs the batch transaction, `compute` runs primer SQL outside it
  // (so a failing compute cannot abort the batch); `worker` may be null.
  Executor(AsyncConnection& main, AsyncConnection& compute, WorkerPool* worker, int batch_size);

  void set_registry(std::shared_ptr<const Registry> registry) { registry_ = std::move(registry); }
  // Claims and applies up to batch_size changes.
  Task<StatusOr<BatchStats>> RunBatch();
  // Recomputes up to batch_size products whose refresh_every has passed.
  Task<StatusOr<BatchStats>> RunScheduled();

 private:
  struct Stored;
  Task<Status> Resolve(Plan& plan);
  // Recomputes of one primer's keys, many per statement (Primer::compute_many).
  struct Computed {
    std::optional<std::string> value, snapshot;
    double ms = 0;
  };
  Task<void> ComputeMany(const Primer& primer, const std::vector<std::string>& keys,
                         std::map<std::string, Computed>* out);
  Task<StatusOr<BatchStats>> Apply(Plan& plan, const std::vector<Change>& changes);
  Task<Status> Rollback();

  AsyncConnection& main_;
  AsyncConnection& compute_;
  WorkerPool* worker_;
  int batch_size_;
  std::shared_ptr<const Registry> registry_;
  WarningLimiter degraded_warnings_{std::chrono::minutes(1)};  // one per table per minute
};

}  // namespace kck
