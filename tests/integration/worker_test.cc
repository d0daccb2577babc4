// The daemon's supervision of the Python worker, with a protocol-speaking
// stand-in process (fake_worker.py): routing, errors as data, a hang, a
// crash, restarts. The Django worker itself is tested by tests/django.
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

}  // namespace
}  // namespace kck::testing
