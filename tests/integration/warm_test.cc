// Preparing products ahead: a primer's warm SQL (primers/warm.h), computed
// by `kck warm` (cli/warm.cc) and by the daemon (listener/warmer.h).
#include <csignal>
#include <fstream>
#include <iterator>
#include <memory>

#include "daemon_helpers.h"

namespace kck::testing {
namespace {

// summary/<author> reads title_list/<author> from kck.cache: warming
// summaries must store their title lists first. slow/<author> takes 20 ms
// (the sleep depends on the key, so computing many keys in one statement
// sleeps once per key).
const char* kWarmConfig = R"json({"primers": [
  {"name": "title_list", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT coalesce(jsonb_agg(title ORDER BY id), '[]') FROM store_book WHERE author_id = :author_id",
   "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]},
  {"name": "summary", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT jsonb_build_object('titles', jsonb_array_length(value)) FROM kck.cache WHERE key = 'title_list/' || :author_id",
   "depends_on": [{"primer": "title_list", "params": {"author_id": "author_id"}}],
   "warm": "SELECT id AS author_id FROM store_author WHERE id <= 20", "warm_every": "1s"},
  {"name": "slow", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT to_jsonb(:author_id) FROM pg_sleep(0.02 + 0 * :author_id)",
   "depends_on": [{"table": "store_author", "params": {"author_id": "id"}}],
   "warm": "SELECT id AS author_id FROM store_author"}
]})json";

class WarmTest : public BookstoreTest {
 protected:
  void SetUp() override {
    BookstoreTest::SetUp();
    MustExec(conn_, "INSERT INTO store_author (name) SELECT 'more ' || i FROM generate_series(1, 130) i");
    InstallConfig(conn_, kWarmConfig);
  }
  std::string Count(const std::string& where) {
    return Scalar(conn_, "SELECT count(*) FROM kck.cache WHERE " + where);
  }
};

TEST_F(WarmTest, TheDaemonWarmsDependenciesFirstAndEachProductOnce) {
  DaemonProcess daemon(conninfo_);
  ASSERT_TRUE(WaitFor([&] { return Count("primer = 'summary'") == "20"; }, std::chrono::seconds(30)));
  ASSERT_TRUE(WaitFor([&] { return Count("primer = 'slow'") == "150"; }, std::chrono::seconds(30)));
  ASSERT_TRUE(WaitDrained(conn_));
  ExpectCacheMatchesRecompute(conn_);
  // Computed after its title list was stored: never recomputed by the cascade.
  EXPECT_EQ(Count("primer = 'summary' AND version = 1"), "20");
  EXPECT_EQ(Count("primer = 'title_list'"), "20");  // only those the summaries need
  EXPECT_EQ(Stored(conn_, "summary/1"), R"({"titles": 10})");
}

TEST_F(WarmTest, AChangeDuringAWarmUpIsAppliedBeforeTheWarmUpEnds) {
  Prime(conn_, {"title_list/21"});
  DaemonProcess daemon(conninfo_);
  // slow's 150 products take 3 s to compute; the change does not wait for them.
  ASSERT_TRUE(WaitFor([&] { return Count("primer = 'slow'") != "0"; }, std::chrono::seconds(10)));
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (21, 'during the warm-up')");
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "title_list/21").find("during") != std::string::npos; }));
  EXPECT_LT(std::stoi(Count("primer = 'slow'")), 150);
  ASSERT_TRUE(WaitFor([&] { return Count("primer = 'slow'") == "150"; }, std::chrono::seconds(30)));
}

TEST_F(WarmTest, WarmEveryBringsBackWhatWasRemoved) {
  DaemonProcess daemon(conninfo_);
  ASSERT_TRUE(WaitFor([&] { return Count("primer = 'summary'") == "20"; }, std::chrono::seconds(30)));
  MustExec(conn_, "DELETE FROM kck.cache WHERE key IN ('summary/3', 'title_list/3')");
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "summary/3") == R"({"titles": 10})"; }, std::chrono::seconds(10)));
  EXPECT_EQ(Count("key = 'title_list/3'"), "1");
}

TEST_F(WarmTest, KckWarmComputesWhatIsMissingAndResumesAfterCtrlC) {
  // 150 slow products at one at a time take 3 s: interrupted 0.5 s after
  // the warm-up printed its plan to a file (waited for, so a slow start
  // under load does not interrupt it before it computed anything; the line
  // must not wait in stdout's buffer).
  const std::string file = ::testing::TempDir() + "kck_warm_ctrl_c_" + std::to_string(getpid()) + ".out";
  auto [rc, out] = RunKckShell("--db '" + conninfo_ + "' warm slow --jobs 1 > '" + file + "' 2>&1 & pid=$!; " +
                                   "for i in $(seq 100); do grep -q 'products to compute' '" + file +
                                   "' && break; sleep 0.1; done; sleep 0.5; kill -INT $pid; wait $pid; echo rc=$?; cat '" +
                                   file + "'",
                               "2>&1");
  std::remove(file.c_str());
  EXPECT_NE(out.find("rc=130"), std::string::npos) << out;
  EXPECT_NE(out.find("interrupted: run kck warm again"), std::string::npos) << out;
  const int first = std::stoi(Count("primer = 'slow'"));
  EXPECT_GT(first, 0);
  EXPECT_LT(first, 150);
  std::tie(rc, out) = RunKckShell("--db '" + conninfo_ + "' warm --jobs 4", "2>&1");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("warm: " + std::to_string(150 - first + 40) + " products to compute"), std::string::npos) << out;
  EXPECT_EQ(Count("primer = 'slow'"), "150");
  EXPECT_EQ(Count("primer = 'summary' AND version = 1"), "20");
  std::tie(rc, out) = RunKckShell("--db '" + conninfo_ + "' warm", "2>&1");
  EXPECT_NE(out.find("warm: 0 products to compute"), std::string::npos) << out;
  ExpectCacheMatchesRecompute(conn_);
  std::tie(rc, out) = RunKckShell("--db '" + conninfo_ + "' warm title_list", "2>&1");
  EXPECT_EQ(rc, 2);
  EXPECT_NE(out.find("kck: primer \"title_list\" has no warm SQL"), std::string::npos) << out;
}

// Only slow warms, and only after the primers load (no warm_every): a
// warm-up that loses part of its plan never gets it back by itself.
const char* kSlowOnlyConfig = R"json({"primers": [
  {"name": "slow", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT to_jsonb(:author_id) FROM pg_sleep(0.02 + 0 * :author_id)",
   "depends_on": [{"table": "store_author", "params": {"author_id": "id"}}],
   "warm": "SELECT id AS author_id FROM store_author"}
]})json";

// One daemon warms these 170 products in about 3.5 s, and so do four now.
// Four used to store 70 of them in 10 s: a daemon whose slice another
// daemon computed waited for its next tick to queue the next one, and
// warm_every re-plans piled up behind the warm-up in progress.
TEST_F(WarmTest, FourDaemonsWarmingAtOnceComputeEachProductOnce) {
  std::vector<std::unique_ptr<DaemonProcess>> daemons;
  for (int i = 0; i < 4; ++i) daemons.push_back(std::make_unique<DaemonProcess>(conninfo_));
  ASSERT_TRUE(WaitFor([&] { return Count("primer = 'summary'") == "20" && Count("primer = 'slow'") == "150"; },
                      std::chrono::seconds(15)))
      << Count("primer = 'summary'") << " of 20 summaries, " << Count("primer = 'slow'") << " of 150 slow products";
  ASSERT_TRUE(WaitDrained(conn_));
  ExpectCacheMatchesRecompute(conn_);
  EXPECT_EQ(Count("version <> 1"), "0");  // no product computed twice
  EXPECT_EQ(Count("primer = 'title_list'"), "20");
}

// The daemon's connection cut before a warm-up lists its keys, and before
// its first and its third slice is queued: after reconnecting it plans the
// warm-up again and stores every product.
TEST_F(WarmTest, AWarmUpCutAtEachStepStillStoresEveryProduct) {
  for (const std::string cut : {"warm_plan", "warm_queue:1", "warm_queue:3"}) {
    MustExec(conn_, "DELETE FROM kck.cache");
    const std::string log = LogPath("cut");
    setenv("KCK_FAULT_CUT", cut.c_str(), 1);
    DaemonProcess daemon(conninfo_, {}, log);
    unsetenv("KCK_FAULT_CUT");
    EXPECT_TRUE(WaitFor([&] { return Count("primer = 'slow'") == "150"; }, std::chrono::seconds(30))) << cut;
    EXPECT_TRUE(WaitFor([&] { return Count("primer = 'summary'") == "20"; }, std::chrono::seconds(30))) << cut;
    const std::string step = cut.substr(0, cut.find(':'));
    EXPECT_NE(FileText(log).find("KCK_FAULT_CUT: cutting the connection at step " + step), std::string::npos)
        << cut << ": the cut never happened:\n" << FileText(log);
    daemon.Kill(SIGTERM);
  }
  ExpectCacheMatchesRecompute(conn_);
}

// A warm-up whose queue transaction waits too long for its lock (another
// warm-up holds it) queues that slice again on the next try.
TEST_F(WarmTest, ASliceThatCouldNotBeQueuedIsQueuedOnTheNextTry) {
  InstallConfig(conn_, kSlowOnlyConfig);
  MustExec(conn_, "SELECT pg_advisory_lock(7037805, 1)");
  const std::string log = LogPath("queue_lock");
  DaemonProcess daemon(conninfo_, {"--compute-timeout", "1s"}, log);
  ASSERT_TRUE(WaitForLog(log, "warm-up:"))
      << FileText(log);
  MustExec(conn_, "SELECT pg_advisory_unlock(7037805, 1)");
  EXPECT_TRUE(WaitFor([&] { return Count("primer = 'slow'") == "150"; }, std::chrono::seconds(30)))
      << Count("primer = 'slow'") << " of 150 stored\n" << FileText(log);
  ExpectCacheMatchesRecompute(conn_);
}

// A warm SQL that fails transiently (here: lock_timeout, its table locked)
// is run again on the next try, not dropped.
TEST_F(WarmTest, AWarmSqlThatFailsTransientlyIsRunAgain) {
  InstallConfig(conn_, kSlowOnlyConfig);
  pg::Connection locker = Connect(conninfo_);
  MustExec(locker, "BEGIN; LOCK TABLE store_author IN ACCESS EXCLUSIVE MODE");
  const std::string log = LogPath("list_lock");
  DaemonProcess daemon(conninfo_, {"--compute-timeout", "1s"}, log);
  ASSERT_TRUE(WaitForLog(log, "warm-up:"))
      << FileText(log);
  MustExec(locker, "COMMIT");
  EXPECT_TRUE(WaitFor([&] { return Count("primer = 'slow'") == "150"; }, std::chrono::seconds(30)))
      << Count("primer = 'slow'") << " of 150 stored\n" << FileText(log);
}

TEST_F(BookstoreTest, InstallRejectsWarmSqlWithoutAColumnPerParameter) {
  auto config = ParseConfig(R"json({"primers": [{"name": "title_list", "parameters": [{"name": "author_id", "type": "int"}],
     "compute": "SELECT 1", "warm": "SELECT id FROM store_author"}]})json", "primers.json");
  ASSERT_TRUE(config.ok());
  auto report = Install(conn_, *config, false);
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.status().message().find("primer \"title_list\": warm: SQL does not prepare: column kck_w.author_id does not exist"),
            std::string::npos) << report.status().message();
  EXPECT_NE(report.status().message().find("(warm returns one column per parameter, named as it)"), std::string::npos);
}

}  // namespace
}  // namespace kck::testing
