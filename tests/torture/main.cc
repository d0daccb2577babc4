// The torture suite's main: one private cluster (as the integration tests),
// the seed and the form printed first so that any failure reproduces.
#include <gtest/gtest.h>

#include <cstdio>

#include "tests/integration/harness.h"
#include "tests/torture/torture_helpers.h"

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  std::printf("kck torture: seed=%llu (KCK_TORTURE_SEED to override), form=%s (KCK_TORTURE_LONG=1 for long), logs in %s\n",
              static_cast<unsigned long long>(kck::torture::Seed()), kck::torture::LongForm() ? "long" : "short",
              kck::torture::LogDir().c_str());
  std::fflush(stdout);
  testing::AddGlobalTestEnvironment(new kck::testing::ClusterEnvironment);
  return RUN_ALL_TESTS();
}
