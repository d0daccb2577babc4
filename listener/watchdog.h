// The daemon's word to systemd (sd_notify): READY/STOPPING/STATUS, and the
// watchdog pings, sent only while the loop makes progress. A batch stuck
// longer than any compute may take (a query that never returns) stops the
// pings, and systemd restarts kck. Without systemd every call is a no-op
// apart from the log line about a stuck batch.
#pragma once

#include <chrono>
#include <cstdint>

namespace kck {

class Watchdog {
 public:
  // `limit`: how long a batch may go without progress.
  explicit Watchdog(std::chrono::steady_clock::duration limit);

  // sd_notify(state), when built with libsystemd.
  static void Notify(const char* state);
  // Every tick: `busy` while a batch is in flight, `progress` the
  // executor's counter (it moves with every product and batch step).
  void Tick(bool busy, uint64_t progress);

 private:
  std::chrono::steady_clock::duration limit_;
  uint64_t watchdog_usec_ = 0;  // systemd's WatchdogSec, 0 when off
  uint64_t seen_progress_ = 0;
  std::chrono::steady_clock::time_point progress_at_ = std::chrono::steady_clock::now();
  bool stalled_ = false;  // no progress for too long (logged once)
};

}  // namespace kck
