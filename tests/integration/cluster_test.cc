#include "pg/cluster.h"

#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tests/integration/harness.h"

namespace kck::pg {
namespace {

using kck::testing::Cluster;
using kck::testing::Connect;
using kck::testing::FreshDatabase;

// The first value of a one-row query.
std::string Query(Connection& conn, const std::string& sql) {
  StatusOr<Result> res = conn.Exec(sql);
  if (!res.ok()) throw std::runtime_error(sql + ": " + res.status().message());
  if (res->rows() != 1) throw std::runtime_error(sql + ": expected one row");
  return std::string(res->get(0, 0));
}

std::unique_ptr<TempCluster> StartOwnCluster(const TempCluster::Options& options = {}) {
  StatusOr<std::unique_ptr<TempCluster>> cluster = TempCluster::Start(options);
  if (!cluster.ok()) throw std::runtime_error(cluster.status().message());
  return std::move(cluster).value();
}

TempCluster::Options WithSettings(std::vector<std::string> settings) {
  TempCluster::Options options;
  options.settings = std::move(settings);
  return options;
}

bool Exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

TEST(TempCluster, SharedClusterAcceptsConnections) {
  TempCluster& cluster = Cluster();
  Connection conn = Connect(cluster.ConnInfo());
  EXPECT_EQ(Query(conn, "SELECT current_user"), "postgres");
  EXPECT_EQ(Query(conn, "SELECT current_database()"), "postgres");
  EXPECT_EQ(Query(conn, "SELECT setting FROM pg_settings WHERE name = 'port'"), std::to_string(cluster.port()));
  EXPECT_EQ(Query(conn, "SHOW unix_socket_directories"), cluster.dir());
  EXPECT_EQ(Query(conn, "SHOW listen_addresses"), "");
  EXPECT_EQ(Query(conn, "SHOW max_connections"), "100");
  EXPECT_EQ(Query(conn, "SHOW fsync"), "on");
  EXPECT_EQ(Query(conn, "SHOW synchronous_commit"), "on");
  EXPECT_EQ(Query(conn, "SHOW server_encoding"), "UTF8");
  EXPECT_EQ(Query(conn, "SHOW lc_collate"), "C");
  EXPECT_EQ(cluster.ConnInfo("db1"),
            "host=" + cluster.dir() + " port=" + std::to_string(cluster.port()) + " dbname=db1 user=postgres");
}

TEST(TempCluster, RunsAsPostgresUserWhenRoot) {
  if (geteuid() != 0) GTEST_SKIP() << "not running as root";
  passwd* pw = getpwnam("postgres");
  ASSERT_NE(pw, nullptr);
  struct stat st;
  ASSERT_EQ(stat((Cluster().dir() + "/data").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, pw->pw_uid);
  Connection conn = Connect(Cluster().ConnInfo());
  // The backend's data directory is only readable by its owner: a server
  // running as root would have been refused by postgres itself.
  EXPECT_EQ(Query(conn, "SELECT pg_backend_pid() > 0"), "t");
}

TEST(TempCluster, FreshDatabasesAreSeparate) {
  std::string first = FreshDatabase();
  std::string second = FreshDatabase();
  ASSERT_NE(first, second);
  Connection a = Connect(first);
  Connection b = Connect(second);
  EXPECT_NE(Query(a, "SELECT current_database()"), Query(b, "SELECT current_database()"));
  ASSERT_TRUE(a.ExecScript("CREATE TABLE only_in_a (id int)").ok());
  EXPECT_EQ(Query(a, "SELECT count(*) FROM pg_class WHERE relname = 'only_in_a'"), "1");
  EXPECT_EQ(Query(b, "SELECT count(*) FROM pg_class WHERE relname = 'only_in_a'"), "0");
}

TEST(TempCluster, CreateDatabaseQuotesTheName) {
  const std::string name = "Mixed Case \"db\" 'x'";
  Status created = Cluster().CreateDatabase(name);
  ASSERT_TRUE(created.ok()) << created.message();
  Connection conn = Connect(Cluster().ConnInfo(name));
  EXPECT_EQ(Query(conn, "SELECT current_database()"), name);
}

TEST(TempCluster, CreateDatabaseReportsDuplicate) {
  ASSERT_TRUE(Cluster().CreateDatabase("kck_duplicate").ok());
  Status again = Cluster().CreateDatabase("kck_duplicate");
  EXPECT_FALSE(again.ok());
  EXPECT_EQ(again.message(), "create database \"kck_duplicate\": database \"kck_duplicate\" already exists");
}

TEST(TempCluster, StopAndRestartKeepData) {
  std::unique_ptr<TempCluster> cluster = StartOwnCluster(WithSettings({"work_mem=7MB", "log_line_prefix = '%m {%p} '"}));
  const int port = cluster->port();
  {
    Connection conn = Connect(cluster->ConnInfo());
    EXPECT_EQ(Query(conn, "SHOW work_mem"), "7MB");
    EXPECT_EQ(Query(conn, "SHOW log_line_prefix"), "%m {%p} ");
    ASSERT_TRUE(conn.ExecScript("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before stop')").ok());
  }
  Status stopped = cluster->Stop();
  ASSERT_TRUE(stopped.ok()) << stopped.message();
  EXPECT_FALSE(Connection::Open(cluster->ConnInfo()).ok());

  Status restarted = cluster->Restart();
  ASSERT_TRUE(restarted.ok()) << restarted.message();
  EXPECT_EQ(cluster->port(), port);
  EXPECT_EQ(cluster->Restart().kind(), Status::Kind::kInvalid);
  {
    Connection conn = Connect(cluster->ConnInfo());
    EXPECT_EQ(Query(conn, "SELECT string_agg(v, ',') FROM kept"), "before stop");
    ASSERT_TRUE(conn.ExecScript("INSERT INTO kept VALUES ('before crash')").ok());
  }
  // An immediate stop skips the shutdown checkpoint: the restart replays WAL.
  stopped = cluster->Stop("immediate");
  ASSERT_TRUE(stopped.ok()) << stopped.message();
  restarted = cluster->Restart();
  ASSERT_TRUE(restarted.ok()) << restarted.message();
  Connection conn = Connect(cluster->ConnInfo());
  EXPECT_EQ(Query(conn, "SELECT string_agg(v, ',' ORDER BY v) FROM kept"), "before crash,before stop");
}

TEST(TempCluster, TwoClustersRunAtOnceAndDestructorCleansUp) {
  std::unique_ptr<TempCluster> second = StartOwnCluster();
  const std::string dir = second->dir();
  EXPECT_NE(dir, Cluster().dir());
  EXPECT_NE(second->port(), Cluster().port());
  Connection shared = Connect(Cluster().ConnInfo());
  Connection own = Connect(second->ConnInfo());
  ASSERT_TRUE(own.ExecScript("CREATE TABLE only_in_second (id int)").ok());
  EXPECT_EQ(Query(own, "SELECT count(*) FROM pg_class WHERE relname = 'only_in_second'"), "1");
  EXPECT_EQ(Query(shared, "SELECT count(*) FROM pg_class WHERE relname = 'only_in_second'"), "0");
  EXPECT_NE(Query(own, "SELECT system_identifier FROM pg_control_system()"),
            Query(shared, "SELECT system_identifier FROM pg_control_system()"));

  ASSERT_TRUE(Exists(dir + "/data/postmaster.pid"));
  const std::string conninfo = second->ConnInfo();
  second.reset();  // with `own` still connected: an immediate stop does not wait for it
  EXPECT_FALSE(Exists(dir));
  EXPECT_FALSE(Connection::Open(conninfo).ok());
  EXPECT_EQ(Query(shared, "SELECT 1"), "1");
}

TEST(TempCluster, KeepClusterEnvironmentKeepsDirectory) {
  std::unique_ptr<TempCluster> cluster = StartOwnCluster();
  const std::string dir = cluster->dir();
  setenv("KCK_KEEP_CLUSTER", "1", 1);
  cluster.reset();
  unsetenv("KCK_KEEP_CLUSTER");
  EXPECT_TRUE(Exists(dir + "/data/PG_VERSION"));
  EXPECT_FALSE(Exists(dir + "/data/postmaster.pid"));  // stopped all the same
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST(TempCluster, StartRejectsMalformedSetting) {
  StatusOr<std::unique_ptr<TempCluster>> cluster = TempCluster::Start(WithSettings({"fsync"}));
  ASSERT_FALSE(cluster.ok());
  EXPECT_EQ(cluster.status().kind(), Status::Kind::kInvalid);
  EXPECT_EQ(cluster.status().message(), "server setting \"fsync\" is not name=value");
}

TEST(TempCluster, StartFailureNamesStepAndLogTail) {
  StatusOr<std::unique_ptr<TempCluster>> cluster = TempCluster::Start(WithSettings({"shared_buffers=banana"}));
  ASSERT_FALSE(cluster.ok());
  const std::string& msg = cluster.status().message();
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  EXPECT_NE(msg.find(": start server: pg_ctl exited with code 1: "), std::string::npos) << msg;
  EXPECT_NE(msg.find("\"shared_buffers\""), std::string::npos) << msg;
  // cluster "<dir>": ...; the directory is gone.
  ASSERT_EQ(msg.rfind("cluster \"", 0), 0u) << msg;
  std::string dir = msg.substr(9, msg.find('"', 9) - 9);
  EXPECT_FALSE(Exists(dir)) << dir;
}

TEST(TempCluster, StartReportsMissingBinaries) {
  TempCluster::Options options;
  options.bindir = "/nonexistent/bin";
  StatusOr<std::unique_ptr<TempCluster>> cluster = TempCluster::Start(options);
  ASSERT_FALSE(cluster.ok());
  EXPECT_EQ(cluster.status().message(), "PostgreSQL binaries not found: no initdb and pg_ctl in \"/nonexistent/bin\"");
}

}  // namespace
}  // namespace kck::pg
