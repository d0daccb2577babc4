// What tests/integration/worker_test.cc leaves out: a Python worker that
// writes garbage on stdout (not JSON, a reply without a value, a reply to
// an unknown request, half a line before exiting). Each garbage reply must
// leave the product's last good value in place, and the daemon goes on.
#include "tests/torture/torture_helpers.h"

namespace kck::torture {
namespace {

using kck::testing::WaitFor;

class WorkerGarbageTest : public kck::testing::BookstoreTest {
 protected:
  void SetUp() override {
    BookstoreTest::SetUp();
    kck::testing::InstallConfig(conn_, R"json({"source": "django", "primers": [
      {"name": "py", "engine": "python", "parameters": [{"name": "n", "type": "int"}],
       "depends_on": [{"table": "store_book", "params": {"n": "author_id"}}]}]})json");
  }
  std::string Field(const std::string& key, const std::string& expr) {
    return Scalar(conn_, "SELECT " + expr + " FROM kck.cache WHERE key = $1", {key});
  }
};

TEST_F(WorkerGarbageTest, GarbageRepliesLeaveLastGoodValueAndDaemonGoesOn) {
  const std::vector<std::string> garbage = {"py/17", "py/19", "py/23", "py/29"};
  for (const auto& key : garbage)
    MustExec(conn_, "INSERT INTO kck.cache (key, primer, value, version) VALUES ('" + key + "', 'py', '0', 1)");
  Daemon daemon(conninfo_, LogDir() + "/worker_garbage.log",
                {"--python-worker", std::string("/usr/bin/python3 ") + KCK_SOURCE_DIR + "/tests/torture/garbage_worker.py",
                 "--worker-timeout", "1s"});
  for (const auto& key : garbage) {
    MustExec(conn_, "SELECT kck.queue_refresh(ARRAY['" + key + "'])");
    // The garbage is handled (error recorded or value changed) before the
    // good key is asked for, so that they are not in one batch.
    EXPECT_TRUE(WaitFor([&] { return Field(key, "error IS NOT NULL OR value <> '0'") == "t"; }, 20s))
        << key << ": garbage reply neither recorded as an error nor stored";
    MustExec(conn_, "SELECT kck.queue_refresh(ARRAY['py/2'])");
    EXPECT_TRUE(WaitFor([&] { return Field("py/2", "value->>'n'") == "2"; }, 20s))
        << "after garbage for " << key << " a good key was not computed; " << OutboxReport(conn_) << "\n"
        << Tail(daemon.log(), 10);
    MustExec(conn_, "DELETE FROM kck.cache WHERE key = 'py/2'");
    EXPECT_EQ(Field(key, "value"), "0") << key << ": garbage replaced the last good value";
  }
  EXPECT_TRUE(WaitQuiet(conn_, TestConnInfo(conninfo_), 30s)) << OutboxReport(conn_);
  EXPECT_TRUE(daemon.running()) << Tail(daemon.log(), 20);
  for (const auto& key : garbage) std::printf("%s after garbage: error %s\n", key.c_str(), Field(key, "error").c_str());
}

}  // namespace
}  // namespace kck::torture
