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
//
// The watchdog (listener/watchdog.h) is ticked by the daemon itself.
#pragma once

namespace kck {

struct Due {
  bool upkeep = false;
  bool refresh = false;
  bool look = false;
  bool summary = false;
  bool gauges = false;
};

class Scheduler {
 public:
  static constexpr int kLookEvery = 5;
  static constexpr int kSummaryEvery = 10;

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
