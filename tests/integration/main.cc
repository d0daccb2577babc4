#include <cstdlib>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  // The generated plpgsql capture unless a run asks for the C one
  // (tests/CMakeLists.txt runs the capture suites again with
  // KCK_CAPTURE=c): scripts/setup.sh installs the module, which "auto"
  // would otherwise take everywhere. The torture suite keeps "auto".
  setenv("KCK_CAPTURE", "plpgsql", 0);
  // GoogleTest owns the environment.
  testing::AddGlobalTestEnvironment(new kck::testing::ClusterEnvironment);
  return RUN_ALL_TESTS();
}
