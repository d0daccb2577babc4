// Warmer: the daemon's warm-ups (a primer's "warm" SQL, primers/warm.h).
// After the primers load (at start and after every kck install) and then
// every `warm_every`, the keys a primer's warm SQL lists are planned, and
// those not stored are queued as refresh requests (kck.queue_refresh) that
// batches compute like any other: a slice of keys of one level at a time,
// and only when the daemon is idle and the outbox empty, so a warm-up holds
// up change-driven work by at most one slice, and a product that depends on
// products is computed after them, once. Slices are sized to take about
// kSliceTime: from the time the last slice took to be computed. A slice
// that fails to queue goes back to the front of the plan, a warm SQL that
// fails transiently runs again, and a warm_every warm-up waits for the one
// in progress. Several daemons each plan the warm-up; a transaction-level
// advisory lock keeps them from queueing a key twice, and whichever daemon
// computes a slice queues its own next one.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/task.h"
#include "listener/worker_pool.h"
#include "pg/async_connection.h"
#include "primers/registry.h"

namespace kck {

class Warmer {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr auto kSliceTime = std::chrono::milliseconds(100);
  static constexpr size_t kMinSlice = 1, kMaxSlice = 500;

  // Warm SQL runs on `compute` (statement_timeout), a Python primer's warm()
  // in `worker` (may be null); queues go through `queue`.
  Warmer(AsyncConnection& compute, AsyncConnection& queue, WorkerPool* worker)
      : compute_(compute), queue_(queue), worker_(worker) {}

  // The primers (re)loaded: every primer with warm SQL is due now.
  void Loaded(const Registry& registry, Clock::time_point now);
  // Primers whose warm_every passed become due.
  void Tick(Clock::time_point now);
  bool has_work() const { return !due_.empty() || !levels_.empty(); }
  // Plans the due primers, or queues the next slice; returns how many
  // refreshes it queued (the daemon then has work). Call while idle with an
  // empty outbox.
  Task<StatusOr<size_t>> Step(const Registry& registry);

 private:
  Task<Status> Plan(const Registry& registry);
  // The keys one primer's warm SQL or warm() lists.
  Task<StatusOr<std::vector<std::string>>> ListKeys(const Primer& primer);
  // Sizes the next slice from how long the last one took.
  void Resize(Clock::time_point now);
  // The next slice of keys, none from a later level than the first.
  std::vector<std::string> NextSlice();
  // A slice that could not be queued goes back to the front of its level.
  void PutBack(std::vector<std::string> slice);
  void MarkDue(const std::string& name);

  AsyncConnection& compute_;
  AsyncConnection& queue_;
  WorkerPool* worker_;
  std::vector<std::string> due_;                            // primers to plan
  std::map<std::string, Clock::time_point> next_;          // next warm-up by primer
  std::map<std::string, std::chrono::seconds> every_;      // warm_every by primer
  std::deque<std::deque<std::string>> levels_;             // planned keys not yet offered
  size_t slice_ = 10;                                       // keys in the next slice
  std::optional<Clock::time_point> queued_at_;             // when the last slice that queued work did
};

}  // namespace kck
