#include "listener/scheduler.h"

#include <algorithm>

namespace kck {

uint64_t CoalesceMs(size_t changes) {
  if (changes < kCoalesceFrom) return 0;
  return std::min<uint64_t>(kCoalesceMaxMs, 1 + changes / kCoalesceChangesPerMs);
}

Due Scheduler::Tick() {
  ++ticks_;
  Due due;
  due.upkeep = true;
  due.refresh = has_refresh_;
  due.look = ticks_ % kLookEvery == 0;
  due.summary = ticks_ % kSummaryEvery == 0;
  due.gauges = has_metrics_ && ticks_ % kLookEvery == 0;
  due.retry = ticks_ % kRetryEvery == 0;
  return due;
}

}  // namespace kck
