#include <gtest/gtest.h>

#include "tests/integration/harness.h"

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  // GoogleTest owns the environment.
  testing::AddGlobalTestEnvironment(new kck::testing::ClusterEnvironment);
  return RUN_ALL_TESTS();
}
