// Summary: the daemon's account of its work for people reading its log. A
// debug line per batch, and every ten seconds (listener/scheduler.h) one
// info line with what the batches did since the last one, if anything.
#pragma once

#include <chrono>

#include "listener/executor.h"

namespace kck {

class Summary {
 public:
  // A batch of changes that took `took`.
  void AddBatch(const BatchStats& stats, std::chrono::steady_clock::duration took);
  // A round of refresh_every recomputes.
  void AddScheduled(const BatchStats& stats);
  // Logs the info line if anything happened since the last, and starts over.
  void Log();

 private:
  BatchStats window_;
};

}  // namespace kck
