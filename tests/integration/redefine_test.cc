// A primer redefined by kck install: its stored products were computed the
// old way and are recomputed (sql/019_primers_redefined.sql), and no daemon
// that still has the old definition writes after one that has the new.
#include <atomic>
#include <thread>

#include "daemon_helpers.h"

namespace kck::testing {
namespace {

// n/<author_id>: the author's books, counted; "tenfold" redefines it.
const char* kCounted = R"json({"primers": [
  {"name": "n", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT count(*) FROM store_book WHERE author_id = :author_id",
   "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}],
   "augment": {"store_book": {"insert": "SELECT to_jsonb((:value)::int + 1)"}}}]})json";

class RedefineTest : public BookstoreTest {
 protected:
  void SetUp() override {
    BookstoreTest::SetUp();
    InstallConfig(conn_, kCounted);
    std::vector<std::string> keys;
    for (int a = 1; a <= 20; ++a) keys.push_back("n/" + std::to_string(a));
    Prime(conn_, keys);
  }
  // kCounted counting each book `factor` times (compute and augment), with
  // `fields` added to the primer.
  static std::string Redefined(int factor, const std::string& fields = "") {
    const std::string f = std::to_string(factor);
    std::string config = kCounted;
    config.replace(config.find("count(*)"), 8, "count(*) * " + f);
    config.replace(config.find("+ 1)"), 4, "+ " + f + ")");
    config.replace(config.find("\"augment\""), 9, fields + "\"augment\"");
    return config;
  }
  // kck install of `config`; its report lines.
  std::string Install(const std::string& config) {
    auto parsed = ParseConfig(config, "primers.json");
    EXPECT_TRUE(parsed.ok()) << parsed.status().message();
    auto report = kck::Install(conn_, *parsed, false);
    EXPECT_TRUE(report.ok()) << report.status().message();
    std::string lines;
    if (report.ok()) {
      for (const auto& l : report->lines) lines += l + "\n";
    }
    return lines;
  }
};

// One daemon: a new compute recomputes every stored product; a new
// refresh_every recomputes none.
TEST_F(RedefineTest, ANewComputeRecomputesEveryStoredProduct) {
  DaemonProcess daemon(conninfo_);
  EXPECT_NE(Install(Redefined(10)).find("primer n: updated (its 20 stored products will be recomputed)"),
            std::string::npos);
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_EQ(Stored(conn_, "n/1"), "100");
  ExpectCacheMatchesRecompute(conn_);
  const std::string version = Scalar(conn_, "SELECT version FROM kck.cache WHERE key = 'n/1'");
  const std::string lines = Install(Redefined(10, R"("refresh_every": "1h", )"));
  EXPECT_NE(lines.find("primer n: updated\n"), std::string::npos) << lines;
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_EQ(Scalar(conn_, "SELECT version FROM kck.cache WHERE key = 'n/1'"), version);
}

// A daemon that loaded the old definition and computed a batch with it
// writes only after another daemon recomputed its key the new way: its
// write transaction finds the primers changed, rolls back, and the daemon
// reloads them and applies the batch's change the new way.
TEST_F(RedefineTest, ADaemonWithTheOldDefinitionDoesNotWriteOverTheNew) {
  const std::string log = LogPath("redefine_paused");
  PausedDaemon old(conninfo_, "write", {}, log, "debug");
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (1, 'one more')");
  ASSERT_TRUE(old.WaitPaused());
  Install(Redefined(10));
  {
    DaemonProcess fresh(conninfo_);
    ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "n/2") == "100"; })) << Stored(conn_, "n/2");
  }
  old.Release();
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_EQ(Stored(conn_, "n/1"), "110");
  ExpectCacheMatchesRecompute(conn_);
  EXPECT_TRUE(WaitForLog(log, "batch rolled back: the primers changed since they were loaded")) << FileText(log);
}

// Four daemons apply single-row and 150-row inserts while the primer is
// redefined, then it is redefined again: every product ends as the last
// definition computes it.
TEST_F(RedefineTest, FourDaemonsUnderWritesEndWithTheLastDefinition) {
  std::vector<std::unique_ptr<DaemonProcess>> daemons;
  for (int i = 0; i < 4; ++i) daemons.push_back(std::make_unique<DaemonProcess>(conninfo_));
  std::atomic<bool> done{false};
  std::thread writer([&] {
    pg::Connection w = Connect(conninfo_);
    for (int i = 0; !done; ++i) {
      const std::string author = std::to_string(1 + i % 20);
      (void)w.ExecScript(i % 10 == 9 ? "INSERT INTO store_book (author_id, title) SELECT 1 + j % 20, 'bulk' "
                                       "FROM generate_series(1, 150) j"
                                     : "INSERT INTO store_book (author_id, title) VALUES (" + author + ", 'one')");
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  Install(Redefined(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  done = true;
  writer.join();
  Install(Redefined(100));  // with no write after it: only its refresh request reaches the products
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_EQ(Stored(conn_, "n/1"), Scalar(conn_, "SELECT count(*) * 100 FROM store_book WHERE author_id = 1"));
  ExpectCacheMatchesRecompute(conn_);
}

}  // namespace
}  // namespace kck::testing
