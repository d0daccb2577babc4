// When the daemon tries products in error again (listener/error_retry.h).
#include "listener/error_retry.h"

#include <gtest/gtest.h>

namespace kck {
namespace {

using std::chrono::minutes;

TEST(ErrorRetry, AProbeThatFailsWaitsTwiceAsLongAsTheLastUpToTheMost) {
  ErrorRetry retry(minutes(2), minutes(10));
  const auto t0 = ErrorRetry::Clock::time_point{} + std::chrono::hours(1);
  EXPECT_TRUE(retry.Due("p", t0));  // never tried
  retry.Failed("p", t0);
  EXPECT_FALSE(retry.Due("p", t0 + minutes(1)));
  EXPECT_TRUE(retry.Due("p", t0 + minutes(2)));
  EXPECT_TRUE(retry.Due("q", t0));  // each primer on its own
  retry.Failed("p", t0 + minutes(2));
  EXPECT_FALSE(retry.Due("p", t0 + minutes(5)));
  EXPECT_TRUE(retry.Due("p", t0 + minutes(6)));
  for (int i = 0; i < 5; ++i) retry.Failed("p", t0 + minutes(6));
  EXPECT_FALSE(retry.Due("p", t0 + minutes(15)));
  EXPECT_TRUE(retry.Due("p", t0 + minutes(16)));  // at most 10 minutes
  retry.Cleared("p");
  EXPECT_TRUE(retry.Due("p", t0 + minutes(16)));
  retry.Failed("p", t0 + minutes(16));
  EXPECT_TRUE(retry.Due("p", t0 + minutes(18)));  // from the first wait again
}

}  // namespace
}  // namespace kck
