// The daemon's periods (listener/scheduler.h).
#include "listener/scheduler.h"

#include <gtest/gtest.h>

#include <vector>

namespace kck {
namespace {

TEST(Scheduler, EveryPeriodComesDueOnItsTick) {
  Scheduler s;
  int upkeeps = 0, refreshes = 0;
  std::vector<int> looks, summaries;
  for (int tick = 1; tick <= 20; ++tick) {
    const Due due = s.Tick();
    EXPECT_FALSE(due.gauges);  // no --metrics
    upkeeps += due.upkeep;
    refreshes += due.refresh;
    if (due.look) looks.push_back(tick);
    if (due.summary) summaries.push_back(tick);
  }
  EXPECT_EQ(upkeeps, 20);
  EXPECT_EQ(refreshes, 0);  // no primer has refresh_every
  EXPECT_EQ(looks, (std::vector<int>{5, 10, 15, 20}));
  EXPECT_EQ(summaries, (std::vector<int>{10, 20}));
}

TEST(Scheduler, ProductsInErrorAreTriedEveryMinute) {
  Scheduler s;
  std::vector<int> retries;
  for (int tick = 1; tick <= 130; ++tick) {
    if (s.Tick().retry) retries.push_back(tick);
  }
  EXPECT_EQ(retries, (std::vector<int>{60, 120}));
}

TEST(Scheduler, RefreshIsDueEveryTickOnlyWhileAPrimerHasRefreshEvery) {
  Scheduler s;
  s.set_has_refresh(true);
  EXPECT_TRUE(s.Tick().refresh);
  EXPECT_TRUE(s.Tick().refresh);
  s.set_has_refresh(false);
  EXPECT_FALSE(s.Tick().refresh);
}

TEST(Scheduler, GaugesAreReadEveryFiveTicksOnlyWithMetrics) {
  Scheduler s;
  s.set_has_metrics(true);
  std::vector<int> gauges;
  for (int tick = 1; tick <= 10; ++tick) {
    if (s.Tick().gauges) gauges.push_back(tick);
  }
  EXPECT_EQ(gauges, (std::vector<int>{5, 10}));
}

TEST(Scheduler, TheCoalescingWindowGrowsWithTheLastBatchUpToItsCap) {
  EXPECT_EQ(CoalesceMs(0), 0u);  // nothing claimed: go idle
  EXPECT_EQ(CoalesceMs(1), 0u);  // the idle case: no added latency
  EXPECT_EQ(CoalesceMs(2), 1u);
  EXPECT_EQ(CoalesceMs(15), 1u);
  EXPECT_EQ(CoalesceMs(16), 2u);
  EXPECT_EQ(CoalesceMs(66), 5u);
  EXPECT_EQ(CoalesceMs(112), kCoalesceMaxMs);
  EXPECT_EQ(CoalesceMs(5000), kCoalesceMaxMs);
  for (size_t n = 2; n < 1000; ++n) EXPECT_LE(CoalesceMs(n), CoalesceMs(n + 1)) << n;
}

}  // namespace
}  // namespace kck
