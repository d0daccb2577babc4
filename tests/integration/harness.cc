#include "tests/integration/harness.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace kck::testing {
namespace {

std::unique_ptr<pg::TempCluster>& SharedCluster() {
  static std::unique_ptr<pg::TempCluster> cluster;
  return cluster;
}

std::atomic<int> database_counter{0};

}  // namespace

void ClusterEnvironment::SetUp() {
  StatusOr<std::unique_ptr<pg::TempCluster>> cluster = pg::TempCluster::Start({});
  ASSERT_TRUE(cluster.ok()) << "could not start the test cluster: " << cluster.status().message();
  SharedCluster() = std::move(cluster).value();
}

void ClusterEnvironment::TearDown() { SharedCluster().reset(); }

pg::TempCluster& Cluster() {
  if (!SharedCluster()) {
    // Only reachable from a binary whose main() did not register the
    // environment: a programming error, not a test failure.
    std::fprintf(stderr, "kck: no test cluster: register kck::testing::ClusterEnvironment in main()\n");
    std::abort();
  }
  return *SharedCluster();
}

std::string FreshDatabase() {
  std::string name = "kck_test_" + std::to_string(++database_counter);
  Status created = Cluster().CreateDatabase(name);
  if (!created.ok()) throw std::runtime_error(created.message());
  return Cluster().ConnInfo(name);
}

pg::Connection Connect(const std::string& conninfo) {
  StatusOr<pg::Connection> conn = pg::Connection::Open(conninfo);
  if (!conn.ok()) throw std::runtime_error(conn.status().message() + " (conninfo: " + conninfo + ")");
  return std::move(conn).value();
}

}  // namespace kck::testing
