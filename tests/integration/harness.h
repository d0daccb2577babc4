// Integration test harness: one private PostgreSQL cluster per test binary.
//
// main.cc registers ClusterEnvironment; its SetUp starts the cluster before
// the first test (a failure there fails the binary and runs no test) and its
// TearDown stops it and removes its directory. Tests get a database of their
// own from FreshDatabase() so they never see each other's tables.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "pg/cluster.h"
#include "pg/connection.h"

namespace kck::testing {

class ClusterEnvironment : public ::testing::Environment {
 public:
  void SetUp() override;
  void TearDown() override;
};

// The shared cluster. Only valid while ClusterEnvironment is set up.
pg::TempCluster& Cluster();

// Creates a new database (kck_test_1, kck_test_2, ...) in the shared cluster
// and returns its conninfo. Safe to call from several threads.
// On failure, fails the current test by throwing (GoogleTest reports the
// message and ends the test).
std::string FreshDatabase();

// Opens a connection. On failure, fails the current test by throwing, like
// FreshDatabase().
pg::Connection Connect(const std::string& conninfo);

}  // namespace kck::testing
