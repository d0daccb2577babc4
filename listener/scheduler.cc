#include "listener/scheduler.h"

namespace kck {

Due Scheduler::Tick() {
  ++ticks_;
  Due due;
  due.upkeep = true;
  due.refresh = has_refresh_;
  due.look = ticks_ % kLookEvery == 0;
  due.summary = ticks_ % kSummaryEvery == 0;
  due.gauges = has_metrics_ && ticks_ % kLookEvery == 0;
  return due;
}

}  // namespace kck
