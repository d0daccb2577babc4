// Scheduler: what the daemon's one-second tick makes due. Pure (no I/O,
// no clock of its own): every period of the daemon is here.
//
//   every tick       the outbox's upkeep (listener/janitor.h), and the
//                    products whose refresh_every passed, when a primer has it
//   every 5 ticks    a look at the outbox: a notification can be missed only
//                    across a reconnect, which drains anyway; this look is
//                    the cheap last line of defence (listener/wakeup.h);
//                    and, with --metrics, reading the outbox's gauges
//                    (listener/metrics.h)
//   every 10 ticks   the summary line of the work done (listener/summary.h)
//   every 60 ticks   products in error tried again (listener/error_retry.h)
//   after a batch    how long changes gather before the next claim
//                    (CoalesceMs: coalescing under load)
//
// The watchdog (listener/watchdog.h) is ticked by the daemon itself.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kck {

// Coalescing under load: how long the next claim waits after a batch that
// claimed `changes` (0: claim at once or go idle). A batch of one change,
// the idle case, waits for nothing. From two changes on the wait is 1 ms
// and grows by 1 ms per kCoalesceChangesPerMs changes the batch claimed, up
// to kCoalesceMaxMs: a batch costs the database about the same whatever its
// size (bench/daemon_statements.sh: the claim and its consumption, the key
// locks and the write are per batch), so the busier the daemon, the more
// changes each batch takes and the less each change costs. At 1000 changes
// a second batches claim a few changes and wait 1 ms, as before; at 10 000
// they reach the cap (bench/README.md, "The daemon's cost under load").
inline constexpr size_t kCoalesceFrom = 2;
inline constexpr size_t kCoalesceChangesPerMs = 16;
inline constexpr uint64_t kCoalesceMaxMs = 8;
uint64_t CoalesceMs(size_t changes);

struct Due {
  bool upkeep = false;
  bool refresh = false;
  bool look = false;
  bool summary = false;
  bool gauges = false;
  bool retry = false;
};

class Scheduler {
 public:
  static constexpr int kLookEvery = 5;
  static constexpr int kSummaryEvery = 10;
  static constexpr int kRetryEvery = 60;

  // Whether any loaded primer has refresh_every.
  void set_has_refresh(bool has) { has_refresh_ = has; }
  // Whether metrics are served (their outbox gauges are read).
  void set_has_metrics(bool has) { has_metrics_ = has; }
  // One tick (a second) passed.
  Due Tick();

 private:
  int ticks_ = 0;
  bool has_refresh_ = false;
  bool has_metrics_ = false;
};

}  // namespace kck
