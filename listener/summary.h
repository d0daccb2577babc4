// Summary: the daemon's account of its work. For people reading its log: a
// debug line per batch, and every ten seconds (listener/scheduler.h) one
// info line with what the batches did since the last one, if anything. For
// `kck status`: the last minute's counts, published in the daemon's row of
// kck.listeners (sql/008_daemon_stats.sql).
#pragma once

#include <array>
#include <chrono>
#include <string>

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
  // One second passed: the last minute moves on.
  void Tick();
  // Whether the published minute is out of date (work added, or the
  // minute moved while it holds work).
  bool changed() const { return changed_; }
  // The last minute as JSON for kck status: {"window_s", "changes",
  // "products", "augmented", "augment_fallbacks", "unchanged", "fresh",
  // "removed", "errors"} (counts over window_s seconds).
  std::string Published();

 private:
  void Add(const BatchStats& stats);

  BatchStats window_;                  // since the last log line
  std::array<BatchStats, 60> seconds_;  // the last minute, one bucket per tick
  size_t now_ = 0;                     // the bucket of this second
  int ticks_ = 0;                      // seconds counted, up to 60
  bool changed_ = false;
  bool had_work_ = false;  // the minute held work at the last tick
};

}  // namespace kck
