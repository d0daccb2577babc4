// The daemon's supervision of the Python worker, with a protocol-speaking
// stand-in process (fake_worker.py): routing, errors as data, a hang, a
// crash, restarts. The Django worker itself is tested by tests/django.
#include <fstream>

#include "daemon_helpers.h"
#include "listener/executor.h"
#include "scrape.h"

namespace kck::testing {
namespace {

const char* kPythonConfig = R"json({"source": "django", "primers": [
  {"name": "py", "engine": "python", "parameters": [{"name": "n", "type": "int"}],
   "depends_on": [{"table": "store_book", "params": {"n": "author_id"}}]}]})json";

class WorkerTest : public BookstoreTest {
 protected:
  void SetUp() override {
    BookstoreTest::SetUp();
    InstallConfig(conn_, kPythonConfig);
  }
  std::vector<std::string> WorkerArgs() {
    return {"--python-worker", std::string("/usr/bin/python3 ") + KCK_SOURCE_DIR + "/tests/integration/fake_worker.py",
            "--worker-timeout", "1s"};
  }
  void Seed(const std::string& key) {
    MustExec(conn_, "INSERT INTO kck.cache (key, primer, value, version) VALUES ('" + key + "', 'py', '0', 1)");
  }
  std::string Field(const std::string& key, const std::string& expr) {
    auto r = conn_.Exec("SELECT " + expr + " FROM kck.cache WHERE key = $1", {key});
    return r.ok() && r->rows() == 1 && !r->is_null(0, 0) ? std::string(r->get(0, 0)) : "<null>";
  }
};

TEST_F(WorkerTest, PythonPrimersAreComputedByTheWorker) {
  DaemonProcess daemon(conninfo_, WorkerArgs());
  MustExec(conn_, "SELECT kck.queue_refresh(ARRAY['py/1'])");
  ASSERT_TRUE(WaitFor([&] { return Field("py/1", "value->>'n'") == "1"; }));
  MustExec(conn_, "UPDATE store_book SET title = 'x' WHERE author_id = 1");
  ASSERT_TRUE(WaitFor([&] { return Field("py/1", "version") == "2"; }));
}

TEST_F(WorkerTest, ExceptionsHangsAndCrashesBecomeErrorsAndTheDaemonGoesOn) {
  Seed("py/7");
  Seed("py/13");
  Seed("py/66");
  const int port = FreePort();
  auto args = WorkerArgs();
  args.insert(args.end(), {"--metrics", "127.0.0.1:" + std::to_string(port)});
  DaemonProcess daemon(conninfo_, args);
  MustExec(conn_, "SELECT kck.queue_refresh(ARRAY['py/7'])");
  ASSERT_TRUE(WaitFor([&] { return Field("py/7", "error") != "<null>"; }));
  EXPECT_NE(Field("py/7", "error").find("seven is unlucky"), std::string::npos);
  EXPECT_EQ(Field("py/7", "value"), "0");  // kept

  MustExec(conn_, "SELECT kck.queue_refresh(ARRAY['py/13'])");
  ASSERT_TRUE(WaitFor([&] { return Field("py/13", "error") != "<null>"; }, std::chrono::seconds(10)));
  EXPECT_NE(Field("py/13", "error").find("timed out"), std::string::npos) << Field("py/13", "error");

  MustExec(conn_, "SELECT kck.queue_refresh(ARRAY['py/66'])");
  ASSERT_TRUE(WaitFor([&] { return Field("py/66", "error") != "<null>"; }, std::chrono::seconds(10)));
  EXPECT_NE(Field("py/66", "error").find("exited"), std::string::npos) << Field("py/66", "error");

  // Restarted: a fresh worker computes the next key.
  MustExec(conn_, "SELECT kck.queue_refresh(ARRAY['py/2'])");
  ASSERT_TRUE(WaitFor([&] { return Field("py/2", "value->>'n'") == "2"; }, std::chrono::seconds(15)));
  EXPECT_TRUE(daemon.running());
  // A hang and a crash are transient until they repeat (kMaxTimeoutTries,
  // kMaxTransientTries): the worker was killed 3 times and exited 5 times.
  const std::string m = ScrapeMetrics(port);
  EXPECT_EQ(Value(m, "kck_worker_restarts_total"), kMaxTimeoutTries + kMaxTransientTries) << m;
  EXPECT_EQ(Value(m, "kck_compute_errors_total{primer=\"py\"}"), 3) << m;
}

TEST_F(WorkerTest, APythonPrimersWarmIsListedByTheWorkerAndComputed) {
  InstallConfig(conn_, R"json({"source": "django", "primers": [
    {"name": "py", "engine": "python", "parameters": [{"name": "n", "type": "int"}], "warm": true,
     "depends_on": [{"table": "store_book", "params": {"n": "author_id"}}]}]})json");
  DaemonProcess daemon(conninfo_, WorkerArgs());
  ASSERT_TRUE(WaitFor([&] { return Field("py/21", "value->>'n'") == "21" && Field("py/22", "value->>'n'") == "22"; }));
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_EQ(Scalar(conn_, "SELECT count(*) FROM kck.cache"), "2");
}

TEST_F(WorkerTest, ConfigReloadPicksUpNewPrimers) {
  DaemonProcess daemon(conninfo_);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  InstallConfig(conn_, kBookstoreConfig);  // NOTIFY kck_config
  Prime(conn_, {"title_list/4"});
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (4, 'after reload')");
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "title_list/4").find("after reload") != std::string::npos; }));
}

// What a batch asks the worker, with a worker of protocol 1 and one of
// protocol 2: a keys rule's row pairs in one request ("pairs"; one request
// each with protocol 1), a key's augments in one request ("changes"), with
// the same outcome either way.
const char* kKeysRuleConfig = R"json({"source": "django", "primers": [
  {"name": "py", "engine": "python", "parameters": [{"name": "n", "type": "int"}],
   "depends_on": [{"table": "store_book", "python_rule": 0}]}]})json";

class WorkerBatchTest : public WorkerTest, public ::testing::WithParamInterface<int> {
 protected:
  void SetUp() override {
    WorkerTest::SetUp();
    InstallConfig(conn_, kKeysRuleConfig);
    MustExec(conn_, "INSERT INTO kck.cache (key, primer, value, version) "
                    "SELECT 'py/' || (1000 + i), 'py', '0', 1 FROM generate_series(1, 200) i");
    log_ = ::testing::TempDir() + "kck_fake_worker_keys_" + std::to_string(getpid()) + ".log";
    std::remove(log_.c_str());
  }
  // Starts the daemon with a fake worker of `protocol`, runs `sql`, waits
  // for the outbox to drain; returns the worker's keys requests.
  std::vector<std::string> Run(int protocol, const std::string& sql) {
    setenv("FAKE_WORKER_PROTOCOL", std::to_string(protocol).c_str(), 1);
    setenv("FAKE_WORKER_LOG", log_.c_str(), 1);
    DaemonProcess daemon(conninfo_, WorkerArgs());
    unsetenv("FAKE_WORKER_PROTOCOL");
    unsetenv("FAKE_WORKER_LOG");
    MustExec(conn_, sql);
    EXPECT_TRUE(WaitDrained(conn_));
    std::ifstream in(log_);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }
  std::string Recomputed() { return Scalar(conn_, "SELECT count(*) FROM kck.cache WHERE version = 2"); }
  std::string log_;
};

// A bulk statement's images reach the rule unpaired, (old, null) and
// (null, new): 300 row pairs for 150 rows.
TEST_P(WorkerBatchTest, TheRowPairsOfABulkUpdateMapToTheirKeys) {
  auto requests = Run(GetParam(), "UPDATE store_book SET title = title || ' x' WHERE id <= 150");
  EXPECT_EQ(Recomputed(), "150");
  EXPECT_EQ(Scalar(conn_, "SELECT count(*) FROM kck.cache WHERE version = 2 AND key::text > 'py/1150'"), "0");
  if (GetParam() >= 2) {
    EXPECT_EQ(requests, std::vector<std::string>{"keys 300"});
  } else {
    EXPECT_EQ(requests.size(), 300u);
  }
}

// 150 single-row statements in one transaction: 150 row pairs, one request.
TEST_P(WorkerBatchTest, TheRowPairsOfManyStatementsInOneTransactionMapToTheirKeys) {
  std::string sql = "BEGIN;";
  for (int id = 1; id <= 150; ++id) sql += " UPDATE store_book SET title = title || ' x' WHERE id = " + std::to_string(id) + ";";
  auto requests = Run(GetParam(), sql + " COMMIT");
  EXPECT_EQ(Recomputed(), "150");
  if (GetParam() >= 2) {
    EXPECT_EQ(requests, std::vector<std::string>{"keys 150"});
  } else {
    EXPECT_EQ(requests.size(), 150u);
  }
}

TEST_P(WorkerBatchTest, APairWhoseRuleRaisesRecomputesItsWholePrimer) {
  MustExec(conn_, "UPDATE store_book SET title = 'boom' WHERE id = 7");  // before the daemon: not planned
  MustExec(conn_, "DELETE FROM kck.changes");
  auto requests = Run(GetParam(), "UPDATE store_book SET title = title || ' x' WHERE id <= 150");
  EXPECT_EQ(Recomputed(), "200");  // the rule failed for book 7: every product of py
  if (GetParam() >= 2) {
    EXPECT_EQ(requests, std::vector<std::string>{"keys 300"});
  }
}

// A key's 60 changes of one batch augment it in one request to a worker of
// protocol 2 (one request per change with protocol 1), and its row is
// written once.
TEST_P(WorkerBatchTest, AKeysChangesOfABatchAugmentInOneRequest) {
  InstallConfig(conn_, R"json({"source": "django", "primers": [
    {"name": "py", "engine": "python", "augment": true, "parameters": [{"name": "n", "type": "int"}],
     "depends_on": [{"table": "store_book", "params": {"n": "author_id"}}]}]})json");
  // The redefinition queued a recompute of the 200 products seeded for the
  // definition before: not this test's subject.
  MustExec(conn_, "DELETE FROM kck.changes");
  MustExec(conn_, "INSERT INTO kck.cache (key, primer, value, version) VALUES ('py/1', 'py', '{\"count\": 0}', 1)");
  std::string sql = "BEGIN;";
  for (int i = 0; i < 60; ++i) sql += " UPDATE store_book SET title = title || ' x' WHERE id = (SELECT min(id) FROM store_book WHERE author_id = 1);";
  auto requests = Run(GetParam(), sql + " COMMIT");
  EXPECT_EQ(Stored(conn_, "py/1"), R"({"count": 60})");
  EXPECT_EQ(Scalar(conn_, "SELECT version FROM kck.cache WHERE key = 'py/1'"), "2");
  if (GetParam() >= 2) {
    EXPECT_EQ(requests, std::vector<std::string>{"augment 60"});
  } else {
    EXPECT_EQ(requests, std::vector<std::string>(60, "augment 1"));
  }
}

INSTANTIATE_TEST_SUITE_P(Protocols, WorkerBatchTest, ::testing::Values(1, 2),
                         [](const auto& info) { return "Protocol" + std::to_string(info.param); });

}  // namespace
}  // namespace kck::testing
